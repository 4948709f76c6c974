from engine.core.context import run_state
from engine.seg2B import s2_alias

run_state(snakemake, s2_alias.run)  # noqa: F821 (injected by Snakemake)
