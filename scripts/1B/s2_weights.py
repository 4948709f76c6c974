from engine.core.context import run_state
from engine.seg1B import s2_weights

run_state(snakemake, s2_weights.run)  # noqa: F821 (injected by Snakemake)
