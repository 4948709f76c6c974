from engine.core.context import run_state
from engine.seg3A import s1_escalation

run_state(snakemake, s1_escalation.run)  # noqa: F821 (injected by Snakemake)
