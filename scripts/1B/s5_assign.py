from engine.core.context import run_state
from engine.seg1B import s5_assign

run_state(snakemake, s5_assign.run)  # noqa: F821 (injected by Snakemake)
