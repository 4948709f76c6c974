from engine.core.context import run_state
from engine.seg5B import states

run_state(snakemake, states.s2_merge)  # noqa: F821 (injected by Snakemake)
