from engine.core.context import run_state
from engine.seg3B import s2_edges

run_state(snakemake, s2_edges.run)  # noqa: F821 (injected by Snakemake)
