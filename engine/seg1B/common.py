"""Shared 1B helpers: policies, streams, grid arithmetic, country geometry as numba rings."""
from __future__ import annotations

import polars as pl
import shapely

from engine.core import datasets
from engine.core.context import RunContext
from engine.core.geometry import grid_shape, rings, tile_of  # noqa: F401 (re-exported for 1B states)
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


# grid and geometry live in engine/core/geometry.py (2A and 3B use them too)


def load_geometry(ctx: RunContext, code: str) -> pl.DataFrame:
    df = datasets.read(ctx, "country_geometry", code)
    return df.with_columns(pl.Series("geom", shapely.from_wkt(df["wkt"].to_numpy()), dtype=pl.Object))
