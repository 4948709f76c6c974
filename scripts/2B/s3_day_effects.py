from engine.core.context import run_state
from engine.seg2B import s3_day_effects

run_state(snakemake, s3_day_effects.run)  # noqa: F821 (injected by Snakemake)
