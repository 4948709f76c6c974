"""1B.S8: `site_locations`, the egress: one WGS84 point per outlet, order-free (RNG-free)."""
from __future__ import annotations

from engine.core import datasets
from engine.core.context import RunContext
from engine.core.errors import EngineFailure

from .common import report_path, state_report

CODE = "1B.S8"
KEY = ["merchant_id", "legal_country_iso", "site_order"]


def run(ctx: RunContext) -> None:
    rep = state_report("S8")
    s7 = datasets.read(ctx, "s7_site_synthesis", CODE)
    cat = datasets.read(ctx, "outlet_catalogue", CODE).select(*KEY, "site_id")
    out = s7.join(cat, on=KEY, how="left", maintain_order="left").select(*KEY, "site_id", "lon_deg", "lat_deg")
    if out["site_id"].null_count() or out.height != cat.height:
        raise EngineFailure(f"{CODE}.ROW_MISSING", "site_locations and outlet_catalogue differ", {})
    datasets.publish(ctx, out, "site_locations", CODE)
    rep.count(sites=out.height)
    rep.rng(None)
    rep.write(report_path(ctx, "S8"))
