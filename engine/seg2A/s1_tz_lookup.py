"""2A.S1: provisional tzid per site — polygon, one nudge, overrides, country fallback (RNG-free)."""
from __future__ import annotations

from engine.core import datasets
from engine.core.context import RunContext

from . import tz_resolve
from .common import KEY, load_policies, report_path, run_date, state_report

CODE = "2A.S1"


def run(ctx: RunContext) -> None:
    rep = state_report("S1")
    pol = load_policies(ctx, "S1")
    sites = datasets.read(ctx, "site_locations", CODE).select(*KEY, "lat_deg", "lon_deg")
    mcc = datasets.read(ctx, "merchant_ids", CODE).select("merchant_id", "mcc")
    out, counts = tz_resolve.resolve(sites, pol["tz_nudge"], pol["tz_overrides"], pol["tz_policy"], run_date(ctx),
                                     mcc=mcc)
    datasets.publish(ctx, out, "s1_tz_lookup", CODE)
    rep.count(sites=out.height, tzids=out["tzid_provisional"].n_unique(), **counts)
    rep.rng(None)
    rep.write(report_path(ctx, "S1"))
