from engine.core.context import run_state
from engine.seg1B import s4_alloc

run_state(snakemake, s4_alloc.run)  # noqa: F821 (injected by Snakemake)
