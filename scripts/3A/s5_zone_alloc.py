from engine.core.context import run_state
from engine.seg3A import s5_zone_alloc

run_state(snakemake, s5_zone_alloc.run)  # noqa: F821 (injected by Snakemake)
