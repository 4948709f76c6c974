from engine.core.context import run_state
from engine.seg3A import s2_priors

run_state(snakemake, s2_priors.run)  # noqa: F821 (injected by Snakemake)
