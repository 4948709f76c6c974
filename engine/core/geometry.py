"""Geometry shared by every segment that places or locates points (1B, 2A, 3B): the tile
grid arithmetic, (multi)polygons flattened into numba arrays, and point-in-polygon."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

# ---------------------------------------------------------------- grid

def grid_shape(g: float) -> tuple[int, int]:
    return int(round(180 / g)), int(round(360 / g))


def tile_of(lat: np.ndarray, lon: np.ndarray, g: float) -> np.ndarray:
    """tile_id = row * ncols + col, row 0 the northernmost band, col 0 at -180."""
    nrows, ncols = grid_shape(g)
    r = np.clip(np.floor((90.0 - lat) / g).astype(np.int64), 0, nrows - 1)
    c = np.clip(np.floor((lon + 180.0) / g).astype(np.int64), 0, ncols - 1)
    return (r * ncols + c).astype(np.uint64)


# ---------------------------------------------------------------- geometry

class Rings(NamedTuple):
    """(Multi)polygons flattened for numba: vertices, ring starts, first ring of each geometry."""
    xs: np.ndarray
    ys: np.ndarray
    ring_off: np.ndarray
    geom_off: np.ndarray


def rings(geoms: list) -> Rings:
    """Flatten (multi)polygons for the numba point-in-polygon kernel.

    Returns xs, ys (vertices), ring_off (start of each ring in xs) and geom_off (first ring
    of each geometry). Even-odd over all rings of a geometry = inside it (holes included).
    """
    xs, ys, ring_off, geom_off = [], [], [0], [0]
    for g in geoms:
        n_r = 0
        for poly in getattr(g, "geoms", [g]):
            for ring in [poly.exterior, *poly.interiors]:
                c = np.asarray(ring.coords)
                xs.append(c[:, 0])
                ys.append(c[:, 1])
                ring_off.append(ring_off[-1] + len(c))
                n_r += 1
        geom_off.append(geom_off[-1] + n_r)
    cat = lambda a: np.concatenate(a) if a else np.zeros(0)
    return Rings(cat(xs), cat(ys), np.asarray(ring_off, np.int64), np.asarray(geom_off, np.int64))


@njit(cache=True)
def point_in_geom(x, y, g, xs, ys, ring_off, geom_off):
    """Even-odd ray cast over every ring of geometry g."""
    inside = False
    for rr in range(geom_off[g], geom_off[g + 1]):
        a = ring_off[rr]
        b = ring_off[rr + 1]
        j = b - 1
        for i in range(a, b):
            yi = ys[i]
            yj = ys[j]
            if (yi > y) != (yj > y):
                xc = xs[i] + (y - yi) * (xs[j] - xs[i]) / (yj - yi)
                if x < xc:
                    inside = not inside
            j = i
    return inside
