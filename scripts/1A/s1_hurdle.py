from engine.core.context import run_state
from engine.seg1A import s1_hurdle

run_state(snakemake, s1_hurdle.run)  # noqa: F821 (injected by Snakemake)
