from engine.core.context import run_state
from engine.seg3A import s3_zone_shares

run_state(snakemake, s3_zone_shares.run)  # noqa: F821 (injected by Snakemake)
