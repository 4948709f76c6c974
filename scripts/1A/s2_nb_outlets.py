from engine.core.context import run_state
from engine.seg1A import s2_nb_outlets

run_state(snakemake, s2_nb_outlets.run)  # noqa: F821 (injected by Snakemake)
