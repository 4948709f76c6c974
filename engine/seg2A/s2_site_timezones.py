"""2A.S2: final site time zones — S1 re-checked for provenance and country membership (RNG-free)."""
from __future__ import annotations

from engine.core import datasets
from engine.core.context import RunContext
from engine.core.errors import EngineFailure

from . import tz_resolve
from .common import load_policies, report_path, run_date, state_report

CODE = "2A.S2"


def run(ctx: RunContext) -> None:
    rep = state_report("S2")
    pol = load_policies(ctx, "S2")
    s1 = datasets.read(ctx, "s1_tz_lookup", CODE)
    mcc = datasets.read(ctx, "merchant_ids", CODE).select("merchant_id", "mcc")
    out = tz_resolve.final_site_timezones(s1, pol["tz_overrides"], run_date(ctx), mcc)
    if out.height != s1.height:
        raise EngineFailure(f"{CODE}.COVERAGE_MISMATCH", "site_timezones must have one row per S1 row",
                            {"s1": s1.height, "s2": out.height})
    datasets.publish(ctx, out, "site_timezones", CODE)
    src = out["tzid_source"]
    rep.count(sites=out.height, tzids=out["tzid"].n_unique(), polygon=int((src == "polygon").sum()),
              override=int((src == "override").sum()), country_fallback=int((src == "country_fallback").sum()),
              nudged=int(out["nudge_lat_deg"].is_not_null().sum()))
    rep.rng(None)
    rep.write(report_path(ctx, "S2"))
