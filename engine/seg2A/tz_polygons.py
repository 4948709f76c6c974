"""Time-zone polygons from the pinned `timezonefinder` data, as a shapely STRtree for batch lookup.

Source: timezone-boundary-builder polygons shipped by `timezonefinder-data` (read through
`timezonefinder.TimezoneFinder.get_geometry`, the package's public decoder). Ocean zones
(`Etc/GMT±N`) are left out, so a point at sea hits nothing (the chapter's `timezone_at_land`).

Lookup is vectorised over all points: one STRtree bounding-box query, then one
`shapely.intersects_xy` over the (point, polygon) candidate pairs with prepared polygons.
`intersects` counts the boundary as inside, so a point exactly on a shared border hits two
zones and is treated as ambiguous by the caller. No Python loop runs per site; the loops here
run once per polygon (~1.2k) when the index is built.
"""
from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np
import shapely

PACKAGES = ("timezonefinder", "timezonefinder-data")


@dataclass(frozen=True)
class TzPolygons:
    names: tuple[str, ...]        # tzid per zone index (the package's own names)
    geom_zone: np.ndarray         # int32 zone index per polygon
    geoms: np.ndarray             # shapely polygons (holes = enclaves), prepared
    tree: shapely.STRtree

    def hits(self, lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(point index, zone index) for every polygon containing or touching each point,
        sorted by point then zone, duplicates (two polygons of one zone) removed."""
        lat = np.asarray(lat, np.float64)
        lon = np.asarray(lon, np.float64)
        if lat.size == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int32)
        pi, gi = self.tree.query(shapely.points(lon, lat))
        inside = shapely.intersects_xy(self.geoms[gi], lon[pi], lat[pi])
        pt = pi[inside].astype(np.int64)
        zn = self.geom_zone[gi[inside]]
        key = np.unique(pt * np.int64(len(self.names) + 1) + zn)
        return key // (len(self.names) + 1), (key % (len(self.names) + 1)).astype(np.int32)


def data_dir() -> Path:
    import timezonefinder_data
    return Path(timezonefinder_data.DATA_DIR)


@functools.lru_cache(maxsize=1)
def load_polygons() -> TzPolygons:
    """Build (once per process, ~1 s) the land-zone polygons and their STRtree."""
    from timezonefinder import TimezoneFinder
    tf = TimezoneFinder(in_memory=True)
    ocean = np.asarray(tf.zone_names.ocean_flags())[: tf.nr_of_zones]
    names = tuple(tf.timezone_names)
    geoms, zone = [], []
    for z in np.flatnonzero(~ocean):
        for rings in tf.get_geometry(tz_id=int(z), use_id=True):   # [shell, hole, ...] as ([lng], [lat])
            shell = np.column_stack(rings[0])
            holes = [np.column_stack(h) for h in rings[1:]]
            geoms.append(shapely.Polygon(shell, holes))
            zone.append(z)
    g = np.asarray(geoms, dtype=object)
    shapely.prepare(g)
    return TzPolygons(names, np.asarray(zone, np.int32), g, shapely.STRtree(g))


def polygon_data_digest() -> dict:
    """Versions and the SHA-256 of the polygon data files, for the 2A.S0 sealed inputs.

    `sha256` is over `relpath \\0 sha256(file) \\n` for every file under the package's data
    directory in ASCII order of relative path (the same shape as the parameter hash);
    `files` lists each file's own digest.
    """
    root = data_dir()
    files = sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    h = hashlib.sha256()
    listing = []
    for p in sorted(files, key=lambda q: q.relative_to(root).as_posix()):
        rel = p.relative_to(root).as_posix()
        d = hashlib.sha256(p.read_bytes()).hexdigest()
        h.update(f"{rel}\0{d}\n".encode())
        listing.append({"path": rel, "sha256": d, "size_bytes": p.stat().st_size})
    return {"packages": {n: version(n) for n in PACKAGES},
            "data_version": (root / "data_version.txt").read_text().strip(),
            "sha256": h.hexdigest(), "files": listing}
