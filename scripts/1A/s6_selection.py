from engine.core.context import run_state
from engine.seg1A import s6_selection

run_state(snakemake, s6_selection.run)  # noqa: F821 (injected by Snakemake)
