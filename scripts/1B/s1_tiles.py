from engine.core.context import run_state
from engine.seg1B import s1_tiles

run_state(snakemake, s1_tiles.run)  # noqa: F821 (injected by Snakemake)
