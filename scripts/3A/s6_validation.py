from engine.core.context import run_state
from engine.seg3A import s6_validation

run_state(snakemake, s6_validation.run)  # noqa: F821 (injected by Snakemake)
