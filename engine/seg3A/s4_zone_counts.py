"""3A.S4: integer outlets per zone, the one largest-remainder law; Σ = site_count per pair (RNG-free)."""
from __future__ import annotations

from engine.core import datasets
from engine.core.context import RunContext

from . import counts
from .common import report_path, state_report

CODE = "3A.S4"


def run(ctx: RunContext) -> None:
    rep = state_report("S4")
    k = counts.zone_counts(datasets.read(ctx, "s3_zone_shares", CODE), CODE)
    datasets.publish(ctx, k, "s4_zone_counts", CODE)
    rep.count(rows=k.height, nonzero=int((k["zone_site_count"] > 0).sum()),
              sites=int(k.unique(["merchant_id", "legal_country_iso"])["site_count"].sum()))
    rep.rng(None)
    rep.write(report_path(ctx, "S4"))
