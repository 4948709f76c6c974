from engine.core.context import run_state
from engine.seg2A import s3_tz_cache

run_state(snakemake, s3_tz_cache.run)  # noqa: F821 (injected by Snakemake)
