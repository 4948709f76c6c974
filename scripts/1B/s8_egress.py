from engine.core.context import run_state
from engine.seg1B import s8_egress

run_state(snakemake, s8_egress.run)  # noqa: F821 (injected by Snakemake)
