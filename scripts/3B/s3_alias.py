from engine.core.context import run_state
from engine.seg3B import s3_alias

run_state(snakemake, s3_alias.run)  # noqa: F821 (injected by Snakemake)
