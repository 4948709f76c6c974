from engine.core.context import run_state
from engine.seg3B import s4_validation

run_state(snakemake, s4_validation.run)  # noqa: F821 (injected by Snakemake)
