from engine.core.context import run_state
from engine.seg2A import s1_tz_lookup

run_state(snakemake, s1_tz_lookup.run)  # noqa: F821 (injected by Snakemake)
