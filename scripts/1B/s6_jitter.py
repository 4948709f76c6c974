from engine.core.context import run_state
from engine.seg1B import s6_jitter

run_state(snakemake, s6_jitter.run)  # noqa: F821 (injected by Snakemake)
