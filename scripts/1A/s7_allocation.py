from engine.core.context import run_state
from engine.seg1A import s7_allocation

run_state(snakemake, s7_allocation.run)  # noqa: F821 (injected by Snakemake)
