from engine.core.context import run_state
from engine.seg1B import s7_synthesis

run_state(snakemake, s7_synthesis.run)  # noqa: F821 (injected by Snakemake)
