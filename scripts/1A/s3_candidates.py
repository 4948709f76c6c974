from engine.core.context import run_state
from engine.seg1A import s3_candidates

run_state(snakemake, s3_candidates.run)  # noqa: F821 (injected by Snakemake)
