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


def integer_largest_remainder(df: pl.DataFrame, group: list[str], mass: str, total: str | int,
                              tie: str, out: str = "count") -> pl.DataFrame:
    """Exact integer split: z = (m·T) // Σm per group, remainder units to the largest
    (m·T) % Σm, ties by ascending `tie`. Masses are int64 with m·T < 2^63 (caller's bound).
    A group with Σm = 0 is split as if every mass were 1 (uniform fallback)."""
    t = pl.col(total) if isinstance(total, str) else pl.lit(total, pl.Int64)
    d = df.with_columns(pl.when(pl.col(mass).sum().over(group) == 0).then(1).otherwise(pl.col(mass))
                        .cast(pl.Int64).alias("_m"))
    d = d.with_columns(pl.col("_m").sum().over(group).alias("_M"), (pl.col("_m") * t).alias("_p"))
    d = d.with_columns((pl.col("_p") // pl.col("_M")).alias("_z"), (pl.col("_p") % pl.col("_M")).alias("_r"))
    d = d.with_columns((t - pl.col("_z").sum().over(group)).alias("_s"))
    d = (d.with_row_index("_row").sort(group + ["_r", tie], descending=[False] * len(group) + [True, False])
         .with_columns(pl.int_range(pl.len()).over(group).alias("_k"))
         .with_columns((pl.col("_z") + (pl.col("_k") < pl.col("_s")).cast(pl.Int64)).alias(out))
         .sort("_row"))
    return d.drop("_row", "_m", "_M", "_p", "_z", "_r", "_s", "_k")
