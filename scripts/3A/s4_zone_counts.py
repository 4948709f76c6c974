from engine.core.context import run_state
from engine.seg3A import s4_zone_counts

run_state(snakemake, s4_zone_counts.run)  # noqa: F821 (injected by Snakemake)
