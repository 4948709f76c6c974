from engine.core.context import run_state
from engine.seg3B import s1_virtual

run_state(snakemake, s1_virtual.run)  # noqa: F821 (injected by Snakemake)
