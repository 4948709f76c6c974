from engine.core.context import run_state
from engine.seg2A import s2_site_timezones

run_state(snakemake, s2_site_timezones.run)  # noqa: F821 (injected by Snakemake)
