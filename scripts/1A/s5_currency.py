from engine.core.context import run_state
from engine.seg1A import s5_currency

run_state(snakemake, s5_currency.run)  # noqa: F821 (injected by Snakemake)
