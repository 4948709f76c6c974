"""3A.S0: verify 1A and 2A, check the prior pack and that it covers every outlet country, seal inputs
(RNG-free). Diagnostic (chapter A3 S0 step 5): 2A site tzids outside the pack's Z(country), counted,
a warning above 1% (2A and zone.tab may disagree on border slivers), never a failure."""
from __future__ import annotations

import polars as pl

from engine.core import datasets
from engine.core.context import RunContext
from engine.core.errors import EngineFailure
from engine.core.gate import run_gate

from .common import load_policies, pack, report_path, state_report

CODE = "3A.S0"
WARN_OUTSIDE_SHARE = 0.01


def run(ctx: RunContext) -> None:
    rep = state_report("S0")
    pol = load_policies(ctx, "S0")
    pk = pack(pol, "S0")
    z = pk.select(pl.col("country_iso").alias("legal_country_iso"), "tzid")
    outlets = datasets.read(ctx, "outlet_catalogue", CODE).select("legal_country_iso").unique()
    missing = outlets.join(z, on="legal_country_iso", how="anti").sort("legal_country_iso")
    if missing.height:
        raise EngineFailure(f"{CODE}.ZONE_UNIVERSE_INCOMPLETE", "an outlet country has no zones in the prior pack; "
                            "re-author config/3A/country_zone_alphas.yaml",
                            {"country": missing["legal_country_iso"][0]})
    st = datasets.read(ctx, "site_timezones", CODE).select("legal_country_iso", "tzid")
    outside = st.join(z, on=["legal_country_iso", "tzid"], how="anti").height
    share = outside / max(st.height, 1)
    upstream = run_gate(ctx, CODE, {"site_tzids_outside_zone_universe": {"count": outside, "share": share}})
    if share > WARN_OUTSIDE_SHARE:
        rep.warn(f"{outside} of {st.height} 2A site tzids lie outside Z(country) of the prior pack")
    rep.count(upstream_verified=len(upstream), countries=pk["country_iso"].n_unique(),
              site_tzids_outside_zone_universe=outside)
    rep.rng(None)
    rep.write(report_path(ctx, "S0"))
