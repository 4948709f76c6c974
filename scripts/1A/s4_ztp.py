from engine.core.context import run_state
from engine.seg1A import s4_ztp

run_state(snakemake, s4_ztp.run)  # noqa: F821 (injected by Snakemake)
