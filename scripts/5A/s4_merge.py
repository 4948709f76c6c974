from engine.core.context import run_state
from engine.seg5A import states

run_state(snakemake, states.s4_merge)  # noqa: F821 (injected by Snakemake)
