"""Shared 1B helpers: policies, streams, grid arithmetic, country geometry as numba rings."""
from __future__ import annotations

import numpy as np
import polars as pl
import shapely

from engine.core.context import RunContext
from engine.core import datasets
from engine.core.segment import Segment

SEG = "1B"
POLICIES = ("grid", "tile_weights", "requirements", "alloc_plan", "jitter", "validation")


_SEGMENT = Segment(SEG)
policy = _SEGMENT.policy
state_report = _SEGMENT.report
report_path = _SEGMENT.report_path
write_trace = _SEGMENT.write_trace
streams = _SEGMENT.streams


def pair_keys(df: pl.DataFrame):
    """Domain key `merchant_id|iso` of each (merchant, country) pair, as an Arrow string array."""
    return df.select(pl.format("{}|{}", "merchant_id", "legal_country_iso")).to_series().to_arrow()


def site_keys(df: pl.DataFrame):
    """Domain key `merchant_id|iso|site_order` of each site, as an Arrow string array."""
    return df.select(pl.format("{}|{}|{}", "merchant_id", "legal_country_iso", "site_order")).to_series().to_arrow()


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

def load_geometry(ctx: RunContext, code: str) -> pl.DataFrame:
    df = datasets.read(ctx, "country_geometry", code)
    return df.with_columns(pl.Series("geom", shapely.from_wkt(df["wkt"].to_numpy()), dtype=pl.Object))


def rings(geoms: list) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
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
    return cat(xs), cat(ys), np.asarray(ring_off, np.int64), np.asarray(geom_off, np.int64)
