"""3A.S4: integer zone counts per escalated pair with the one largest-remainder law (RNG-free).

Rows arrive sorted (merchant_id, legal_country_iso, tzid), so the law's "ties to the earlier row" is
the chapter's "ties to the lower tzid". Shares are normalised by their pair sum first, so the floors
never exceed N. No zone floors, no anti-collapse repair: S4 only conserves counts.
"""
from __future__ import annotations

import numpy as np
import polars as pl

from engine.core.errors import EngineFailure
from engine.core.integerise import group_offsets, split_float

RESIDUE_DP = 8       # the project's largest-remainder default (engine.core.integerise.largest_remainder)


def zone_counts(shares: pl.DataFrame, code: str = "3A.S4") -> pl.DataFrame:
    """s4_zone_counts from s3 rows (needs site_count, share_drawn, share_sum_country)."""
    d = shares.sort("merchant_id", "legal_country_iso", "tzid")
    off = group_offsets(d, ["merchant_id", "legal_country_iso"])
    p = (d["share_drawn"] / d["share_sum_country"]).to_numpy()
    n = d["site_count"].cast(pl.Int64).to_numpy()
    counts, _, rank = split_float(p, off, n[off[:-1]] if d.height else np.zeros(0, np.int64), RESIDUE_DP)
    out = d.select("merchant_id", "legal_country_iso", "tzid", "site_count", "share_sum_country").with_columns(
        pl.Series("zone_site_count", counts.astype(np.int32)), pl.Series("fractional_target", p * n),
        pl.Series("residual_rank", rank.astype(np.int16)))
    out = out.with_columns(pl.col("zone_site_count").sum().over("merchant_id", "legal_country_iso")
                           .cast(pl.Int32).alias("zone_site_count_sum"))
    bad = out.filter((pl.col("zone_site_count_sum") != pl.col("site_count")) | (pl.col("zone_site_count") < 0))
    if bad.height:
        raise EngineFailure(f"{code}.COUNT_CONSERVATION_BROKEN", "zone counts do not sum to the pair's site count",
                            {"merchant_id": bad["merchant_id"][0], "country": bad["legal_country_iso"][0]})
    return out.select("merchant_id", "legal_country_iso", "tzid", "zone_site_count", "zone_site_count_sum",
                      "site_count", "share_sum_country", "fractional_target", "residual_rank")
