from engine.core.context import run_state
from engine.seg1A import s8_catalogue

run_state(snakemake, s8_catalogue.run)  # noqa: F821 (injected by Snakemake)
