"""1A.S8: the outlet catalogue, one row per outlet stub (RNG-free)."""
from __future__ import annotations

import polars as pl

from engine.core import datasets, ids
from engine.core.context import RunContext
from engine.core.errors import EngineFailure

from .common import report_path, state_report

CODE = "1A.S8"
MAX_COUNT = 999_999


def blocks(ctx: RunContext, code: str) -> pl.DataFrame:
    """One row per (merchant, country) with count >= 1; single-site merchants get their home."""
    mids = datasets.read(ctx, "merchant_ids", code).select("merchant_id", "home_country_iso")
    hurdle = datasets.read(ctx, "s1_hurdle", code).select("merchant_id", "is_multi")
    nb = datasets.read(ctx, "s2_nb_outlets", code).select("merchant_id", "n_outlets")
    alloc = datasets.read(ctx, "s7_allocation", code).select("merchant_id", "country_iso", "count")
    multi = (alloc.filter(pl.col("count") >= 1).join(nb, on="merchant_id", how="left")
             .select("merchant_id", pl.col("country_iso").alias("legal_country_iso"),
                     pl.col("count").alias("final_country_outlet_count"),
                     pl.col("n_outlets").alias("raw_nb_outlet_draw"), pl.lit(True).alias("single_vs_multi_flag")))
    single = (mids.join(hurdle, on="merchant_id").filter(~pl.col("is_multi"))
              .select("merchant_id", pl.col("home_country_iso").alias("legal_country_iso"),
                      pl.lit(1, pl.Int32).alias("final_country_outlet_count"),
                      pl.lit(1, pl.Int32).alias("raw_nb_outlet_draw"), pl.lit(False).alias("single_vs_multi_flag")))
    b = pl.concat([multi, single]).join(mids, on="merchant_id", how="left")
    missing = mids.join(b, on="merchant_id", how="anti")
    if missing.height:
        raise EngineFailure(f"{CODE}.SUM_MISMATCH", "merchant has no outlets", {"merchant_id": missing["merchant_id"][0]})
    return b


def expand(b: pl.DataFrame, seed: int) -> pl.DataFrame:
    """site_order = 1..count per block; site_id from engine.core.ids."""
    if b.height and b["final_country_outlet_count"].max() > MAX_COUNT:
        raise EngineFailure(f"{CODE}.SITE_ID_OVERFLOW", f"a country count exceeds {MAX_COUNT}", {})
    cat = (b.with_columns(pl.int_ranges(1, pl.col("final_country_outlet_count") + 1, dtype=pl.Int32)
                          .alias("site_order"))
           .explode("site_order")
           .sort("merchant_id", "legal_country_iso", "site_order"))
    sid = ids.site_ids(cat["merchant_id"].to_numpy(), cat["legal_country_iso"],
                       cat["site_order"].to_numpy())
    return cat.with_columns(pl.Series("site_id", sid), pl.lit(seed, pl.UInt64).alias("global_seed")).select(
        "merchant_id", "legal_country_iso", "site_order", "site_id", "home_country_iso", "single_vs_multi_flag",
        "raw_nb_outlet_draw", "final_country_outlet_count", "global_seed")


def run(ctx: RunContext) -> None:
    rep = state_report("S8")
    cat = expand(blocks(ctx, CODE), ctx.seed)
    if cat["site_id"].n_unique() != cat.height:
        raise EngineFailure(f"{CODE}.DUP_PK", "site_id collision", {"dataset": "outlet_catalogue"})
    datasets.publish(ctx, cat, "outlet_catalogue", CODE)
    rep.count(outlets=cat.height, merchants=cat["merchant_id"].n_unique(),
              pairs=cat.select("merchant_id", "legal_country_iso").n_unique(),
              foreign_outlets=int((cat["legal_country_iso"] != cat["home_country_iso"]).sum()))
    rep.rng(None)
    rep.write(report_path(ctx, "S8"))
