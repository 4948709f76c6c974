from engine.core.context import run_state
from engine.seg2B import s7_validation

run_state(snakemake, s7_validation.run)  # noqa: F821 (injected by Snakemake)
