from engine.core.context import run_state
from engine.seg2B import s1_site_weights

run_state(snakemake, s1_site_weights.run)  # noqa: F821 (injected by Snakemake)
