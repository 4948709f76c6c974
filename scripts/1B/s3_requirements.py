from engine.core.context import run_state
from engine.seg1B import s3_requirements

run_state(snakemake, s3_requirements.run)  # noqa: F821 (injected by Snakemake)
