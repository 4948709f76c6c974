from engine.core.context import run_state
from engine.seg2B import s4_group_weights

run_state(snakemake, s4_group_weights.run)  # noqa: F821 (injected by Snakemake)
