from engine.core.context import run_state
from engine.seg2B import s5_router_audit

run_state(snakemake, s5_router_audit.run)  # noqa: F821 (injected by Snakemake)
