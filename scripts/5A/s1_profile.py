from engine.core.context import run_state
from engine.seg5A import states

run_state(snakemake, states.s1_profile)  # noqa: F821 (injected by Snakemake)
