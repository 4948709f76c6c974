"""3B's point -> tzid lookup: 2A's resolver (engine.seg2A.tz_resolve) on the same pinned polygons
and zone tables, vectorised over points (settlement cities, distinct edge tiles).

Ladder, as 2A.S1 runs it for sites: the single in-country land zone whose polygon holds the point
(POLYGON); else one nudge by tz_nudge.epsilon_degrees and again (NUDGE); else an active
country-scope override of config/2A/tz_overrides.yaml (OVERRIDE: site and MCC scopes name 2A sites
and merchants, not places, so they do not apply to tiles); else the country's principal zone.tab
zone (FALLBACK, as 2A's country_fallback). A country without any zone gives None (the caller
raises). Ambiguous points (China's overlapping Shanghai/Urumqi polygons, French overseas tiles
under FR) end in the fallback, exactly as 2A's sites do.
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from engine.seg2A.tz_polygons import TzPolygons, load_polygons
from engine.seg2A.tz_resolve import active_overrides, candidates, nudge
from engine.seg2A.tz_tables import ZoneTables, zone_tables

SOURCES = ("POLYGON", "NUDGE", "OVERRIDE", "FALLBACK")


def valid_tzids() -> frozenset[str]:
    """Every name the pinned tzdata can load (zones and links): what 2A validates tzids against."""
    return zone_tables().zones


class Resolver:
    """`resolver(lat, lon, iso) -> (tzid, source)`, object arrays, one row per point."""

    def __init__(self, nudge_policy: dict, overrides_policy: dict, run_date: dt.date,
                 polys: TzPolygons | None = None, tables: ZoneTables | None = None):
        self.eps = float(nudge_policy["epsilon_degrees"])
        ov = active_overrides(overrides_policy, run_date)
        self.country_override = dict(ov.filter(ov["scope"] == "country").select("target", "tzid").iter_rows())
        self.polys = polys or load_polygons()
        self.tables = tables or zone_tables()
        self.calls: list[int] = []               # points per call (tests: one call per distinct tile)

    def __call__(self, lat, lon, iso) -> tuple[np.ndarray, np.ndarray]:
        lat = np.asarray(lat, np.float64)
        lon = np.asarray(lon, np.float64)
        iso = np.asarray(iso, dtype=object)
        self.calls.append(len(lat))
        tz, _, _ = candidates(lat, lon, iso, self.polys, self.tables)
        src = np.where(np.equal(tz, None), None, "POLYGON").astype(object)
        need = np.flatnonzero(np.equal(tz, None))
        if len(need):
            la2, lo2 = nudge(lat[need], lon[need], self.eps)
            tz2, _, _ = candidates(la2, lo2, iso[need], self.polys, self.tables)
            hit = ~np.equal(tz2, None)
            tz[need[hit]] = tz2[hit]
            src[need[hit]] = "NUDGE"
        need = np.flatnonzero(np.equal(tz, None))
        if len(need):
            c = pl.Series(iso[need].tolist(), dtype=pl.String)
            ov = c.replace_strict(self.country_override, default=None, return_dtype=pl.String).to_numpy()
            fb = c.replace_strict(self.tables.principals, default=None, return_dtype=pl.String).to_numpy()
            has_ov = ~np.equal(ov, None)
            tz[need] = np.where(has_ov, ov, fb)
            src[need] = np.where(has_ov, "OVERRIDE", np.where(np.equal(fb, None), None, "FALLBACK"))
        return tz, src


def resolve_points(tz_lookup, lat, lon, iso) -> tuple[np.ndarray, np.ndarray | None]:
    """Call a lookup that returns tzids, or (tzids, sources) like Resolver; sources None if not given."""
    res = tz_lookup(lat, lon, iso)
    if isinstance(res, tuple):
        return np.asarray(res[0], dtype=object), np.asarray(res[1], dtype=object)
    return np.asarray(res, dtype=object), None
