"""Shared 3B helpers: segment bookkeeping, policies from the declared paths, 2A's resolver, the 1B tile
surface with country geometry for the jitter, the binary blob writer."""
from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import numpy as np
import polars as pl
import shapely

from engine.core import datasets
from engine.core.context import RunContext
from engine.core.contracts import load_policy
from engine.core.geometry import Rings, rings
from engine.core.publish import clear_stale, tmp_sibling
from engine.core.segment import Segment

from . import edges
from .tz_lookup import Resolver

SEG = "3B"
NAMES = ("mcc_channel_rules", "cdn_country_weights", "virtual_settlement", "virtual_routing_fields",
         "virtual_validation")

_SEGMENT = Segment(SEG)
state_report = _SEGMENT.report
report_path = _SEGMENT.report_path
write_trace = _SEGMENT.write_trace


def load_policies(ctx: RunContext, state: str) -> dict[str, dict]:
    """The 3B policies this state declares (schema-checked, finite), by name."""
    return {n: _SEGMENT.policy(ctx, n, state) for n in NAMES if ctx.io.has_input(f"policy_{SEG}_{n}")}


def resolver(ctx: RunContext, state: str) -> Resolver:
    """2A's point -> tzid resolver with 2A's nudge and override policies, active on the run date."""
    pol = {n: load_policy(ctx.io.policy("2A", n), "2A", n, f"{SEG}.{state}") for n in ("tz_nudge", "tz_overrides")}
    run_date = dt.date.fromisoformat(ctx.config["run"]["created_utc"][:10])      # as 2A.S1 (a label, not the clock)
    return Resolver(pol["tz_nudge"], pol["tz_overrides"], run_date)


def tile_surface(ctx: RunContext, code: str) -> tuple[edges.TileSurface, Rings]:
    """1B tile_index ⨝ tile_weights ⨝ tile_bounds, each rectangle clipped to its country's bbox, anchors
    (tile centre, or the country's representative point for 1B `fallback_point` tiles) and the country
    geometry as numba rings (only non-interior tiles test points against it), as 1B.S6 does for sites."""
    ti = datasets.read(ctx, "tile_index", code).select("country_iso", "tile_id", "centroid_lat_deg", "centroid_lon_deg",
                                                      "interior", "inclusion_rule")
    tw = datasets.read(ctx, "tile_weights", code).select("country_iso", "tile_id", "weight_fp")
    tb = datasets.read(ctx, "tile_bounds", code).select("country_iso", "tile_id", "min_lon_deg", "max_lon_deg",
                                                       "min_lat_deg", "max_lat_deg")
    geo = datasets.read(ctx, "country_geometry", code)
    g = shapely.from_wkt(geo["wkt"].to_numpy())
    box = shapely.bounds(g)
    gt = pl.DataFrame({"country_iso": geo["country_iso"], "geom_idx": np.arange(geo.height, dtype=np.int64),
                       "bx0": box[:, 0], "by0": box[:, 1], "bx1": box[:, 2], "by1": box[:, 3],
                       "rep_lon": geo["rep_lon"], "rep_lat": geo["rep_lat"]})
    key = ["country_iso", "tile_id"]
    t = ti.join(tw, on=key, how="inner").join(tb, on=key, how="inner").join(gt, on="country_iso", how="inner")
    fb = pl.col("inclusion_rule") == "fallback_point"
    t = t.with_columns(
        pl.max_horizontal("min_lon_deg", "bx0").alias("min_lon_deg"), pl.min_horizontal("max_lon_deg", "bx1")
        .alias("max_lon_deg"), pl.max_horizontal("min_lat_deg", "by0").alias("min_lat_deg"),
        pl.min_horizontal("max_lat_deg", "by1").alias("max_lat_deg"),
        pl.when(fb).then("rep_lon").otherwise("centroid_lon_deg").alias("anchor_lon"),
        pl.when(fb).then("rep_lat").otherwise("centroid_lat_deg").alias("anchor_lat"))
    return edges.tile_surface(t, code=code), rings(list(g))


def write_bytes(data: bytes, target: Path) -> None:
    """Atomically write a binary control file (stage in a hidden sibling, then rename)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    clear_stale(target)
    tmp = tmp_sibling(target)
    tmp.write_bytes(data)
    os.replace(tmp, target)
