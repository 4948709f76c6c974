from engine.core.context import run_state
from engine.seg1B import s9_validation

run_state(snakemake, s9_validation.run)  # noqa: F821 (injected by Snakemake)
