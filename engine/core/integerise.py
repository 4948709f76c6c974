"""Largest-remainder integerisation, the one implementation every segment uses."""
from __future__ import annotations

import numpy as np
import polars as pl


def largest_remainder(df: pl.DataFrame, group: list[str], total: str, share: str,
                      tie_break: list[tuple[str, bool]], dp: int = 8) -> pl.DataFrame:
    """Split each group's integer `total` by `share` into counts that sum exactly to it.

    a = total*share, floor b = ⌊a⌋, residual r = round_half_even(a - b, dp); the d = total - Σb
    rows first in order (r descending, then `tie_break` [(column, descending)]) get +1.
    Adds `residual` (f64), `residual_rank` (i32, 1-based) and `count` (i64).
    """
    a = (df[total].cast(pl.Float64) * df[share]).to_numpy()
    b = np.floor(a)
    r = np.round(a - b, dp)                       # numpy rounds half to even
    r = np.where(r >= 1.0, 0.0, r)                # a - b can round up to 1.0 only when a is integral
    out = df.with_columns(pl.Series("_floor", b.astype(np.int64)), pl.Series("residual", r))
    out = out.with_columns((pl.col(total) - pl.col("_floor").sum().over(group)).alias("_deficit"))
    by = group + ["residual"] + [c for c, _ in tie_break]
    desc = [False] * len(group) + [True] + [d for _, d in tie_break]
    out = (out.with_row_index("_row").sort(by, descending=desc)
           .with_columns((pl.int_range(pl.len()).over(group) + 1).cast(pl.Int32).alias("residual_rank"))
           .with_columns((pl.col("_floor") + (pl.col("residual_rank") <= pl.col("_deficit")).cast(pl.Int64))
                         .alias("count"))
           .sort("_row"))
    return out.drop("_row", "_floor", "_deficit")
