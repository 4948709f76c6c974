from engine.core.context import run_state
from engine.seg5B import s5_validation

run_state(snakemake, s5_validation.merge)  # noqa: F821 (injected by Snakemake)
