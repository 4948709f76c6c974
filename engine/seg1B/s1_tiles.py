"""1B.S1: the tile universe of every country on a regular lat/lon grid (RNG-free)."""
from __future__ import annotations

import numpy as np
import polars as pl
import shapely

from engine.core import datasets, detmath
from engine.core.context import RunContext
from engine.core.progress import Progress

from .common import grid_shape, load_geometry, policy, report_path, state_report, tile_of

CODE = "1B.S1"


def country_tiles(iso: str, geom, g: float, radius_m: float, rep: tuple[float, float]) -> pl.DataFrame:
    """Cells whose centre lies in or on the polygon; else the cell of its representative point."""
    nrows, ncols = grid_shape(g)
    minx, miny, maxx, maxy = geom.bounds
    c0, c1 = int(np.floor((minx + 180) / g)), int(np.ceil((maxx + 180) / g))
    r0, r1 = int(np.floor((90 - maxy) / g)), int(np.ceil((90 - miny) / g))
    rows, cols = np.meshgrid(np.arange(max(r0, 0), min(r1, nrows)), np.arange(max(c0, 0), min(c1, ncols)),
                             indexing="ij")
    rows, cols = rows.ravel(), cols.ravel()
    cx, cy = -180 + (cols + 0.5) * g, 90 - (rows + 0.5) * g
    shapely.prepare(geom)
    keep = shapely.intersects_xy(geom, cx, cy)
    rule = "center"
    if not keep.any():
        tid = int(tile_of(np.array([rep[1]]), np.array([rep[0]]), g)[0])
        rows, cols = np.array([tid // ncols]), np.array([tid % ncols])
        keep = np.array([True])
        rule = "fallback_point"
    rows, cols = rows[keep], cols[keep]
    lon0, lat1 = -180 + cols * g, 90 - rows * g
    lon1, lat0 = lon0 + g, lat1 - g
    interior = shapely.contains_properly(geom, shapely.box(lon0, lat0, lon1, lat1)) if rule == "center" \
        else np.zeros(len(rows), bool)
    area = radius_m ** 2 * np.radians(g) * (detmath.sin(np.radians(lat1)) - detmath.sin(np.radians(lat0)))
    return pl.DataFrame({
        "country_iso": iso, "tile_id": (rows * ncols + cols).astype(np.uint64),
        "raster_row": rows.astype(np.uint32), "raster_col": cols.astype(np.uint32),
        "centroid_lat_deg": lat0 + g / 2, "centroid_lon_deg": lon0 + g / 2, "pixel_area_m2": area,
        "inclusion_rule": rule, "interior": interior,
        "min_lat_deg": lat0, "max_lat_deg": lat1, "min_lon_deg": lon0, "max_lon_deg": lon1,
    })


def build_tiles(geo: pl.DataFrame, grid: dict, log=None) -> pl.DataFrame:
    prog = Progress("1B.S1 tiles", geo.height, "countries", log)
    parts = []
    for iso, geom, rx, ry in zip(geo["country_iso"], geo["geom"], geo["rep_lon"], geo["rep_lat"]):  # per country
        parts.append(country_tiles(iso, geom, grid["grid_deg"], grid["earth_authalic_radius_m"], (rx, ry)))
        prog.update(1)
    return pl.concat(parts).sort("country_iso", "tile_id")


def run(ctx: RunContext) -> None:
    rep = state_report("S1")
    grid = policy(ctx, "grid", "S1")
    geo = load_geometry(ctx, CODE)
    tiles = build_tiles(geo, grid, ctx.logger)
    datasets.publish(ctx, tiles, "tile_index", CODE)
    datasets.publish(ctx, tiles, "tile_bounds", CODE)
    fb = tiles.filter(pl.col("inclusion_rule") == "fallback_point")["country_iso"].to_list()
    rep.count(tiles=tiles.height, countries=geo.height, interior_tiles=int(tiles["interior"].sum()),
              fallback_countries=len(fb))
    rep.data["fallback_point_countries"] = fb
    rep.data["disc_geometry_countries"] = geo.filter(pl.col("source") == "disc")["country_iso"].to_list()
    rep.rng(None)
    rep.write(report_path(ctx, "S1"))
