from engine.core.context import run_state
from engine.seg3A import s0_gate

run_state(snakemake, s0_gate.run)  # noqa: F821 (injected by Snakemake)
