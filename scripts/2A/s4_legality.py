from engine.core.context import run_state
from engine.seg2A import s4_legality

run_state(snakemake, s4_legality.run)  # noqa: F821 (injected by Snakemake)
