"""3B.S2: the edge catalogue — merchant-conditioned, settlement-coupled CDN edges on 1B tiles (families
3B.edge_tile, 3B.edge_jitter; one stream each per merchant); tzid_operational from 2A's resolver once per
distinct tile."""
from __future__ import annotations

import polars as pl

from engine.core import datasets
from engine.core.context import RunContext
from engine.core.errors import EngineFailure

from . import edges
from .common import load_policies, report_path, resolver, state_report, tile_surface, write_trace

CODE = "3B.S2"


def catalogue(ctx: RunContext, settle: pl.DataFrame, cdn: dict, state: str, code: str) -> edges.Edges:
    """edges.edge_catalogue on the 1B surface with 2A's resolver (S4 replays a subset through this too)."""
    surf, geom = tile_surface(ctx, code)
    s = settle.select("merchant_id", "settlement_country_iso", "lat_deg", "lon_deg")
    return edges.edge_catalogue(s, cdn, surf, resolver(ctx, state), ctx.identity, rings=geom, code=code)


def run(ctx: RunContext) -> None:
    rep = state_report("S2")
    pol = load_policies(ctx, "S2")
    settle = datasets.read(ctx, "virtual_settlement_3B", CODE)
    e = catalogue(ctx, settle, pol["cdn_country_weights"], "S2", CODE)
    trace = e.trace.to_dict()
    t, j = trace[edges.TILE_FAMILY], trace[edges.JITTER_FAMILY]
    if t["draws"] != e.catalogue.height or j["blocks"] != int(e.catalogue["attempts"].sum()):
        raise EngineFailure(f"{CODE}.RNG_ACCOUNTING_MISMATCH", "tile draws must equal edges and jitter blocks the "
                            "attempts", {"edges": e.catalogue.height, "tile_draws": t["draws"]})
    datasets.publish(ctx, e.catalogue, "edge_catalogue_3B", CODE)
    datasets.publish(ctx, e.index, "edge_catalogue_index_3B", CODE)
    datasets.publish(ctx, e.events.sort("merchant_id", "family"), "rng_event_edge_3B", CODE)
    cat = e.catalogue
    rep.count(merchants=e.index.height, edges=cat.height, countries=cat["country_iso"].n_unique(),
              tiles=cat.select("country_iso", "tile_id").n_unique(), jitter_fallbacks=int(cat["jitter_fallback"].sum()),
              **{f"tz_{k}": n for k, n in cat["tz_source"].cast(pl.String).value_counts().iter_rows()})
    rep.rng(write_trace(ctx, "S2", e.trace))
    rep.write(report_path(ctx, "S2"))
