from engine.core.context import run_state
from engine.seg1A import s0_universe

run_state(snakemake, s0_universe.run)  # noqa: F821 (injected by Snakemake)
