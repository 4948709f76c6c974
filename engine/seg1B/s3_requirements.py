"""1B.S3: outlets to place per (merchant, country), from 1A's outlet_catalogue (RNG-free)."""
from __future__ import annotations

import polars as pl

from engine.core import datasets
from engine.core.context import RunContext
from engine.core.errors import EngineFailure

from .common import policy, report_path, state_report

CODE = "1B.S3"


def requirements(cat: pl.DataFrame) -> pl.DataFrame:
    req = (cat.group_by("merchant_id", "legal_country_iso")
           .agg(pl.len().cast(pl.Int64).alias("n_sites"), pl.col("site_order").min().alias("lo"),
                pl.col("site_order").max().alias("hi"), pl.col("site_order").n_unique().alias("nd"))
           .sort("merchant_id", "legal_country_iso"))
    bad = req.filter((pl.col("lo") != 1) | (pl.col("hi") != pl.col("n_sites")) | (pl.col("nd") != pl.col("n_sites")))
    if bad.height:
        raise EngineFailure(f"{CODE}.SITE_ORDER_INTEGRITY", "site_order is not 1..n for a (merchant, country)",
                            {"merchant_id": bad["merchant_id"][0], "country": bad["legal_country_iso"][0]})
    return req.select("merchant_id", "legal_country_iso", "n_sites")


def run(ctx: RunContext) -> None:
    rep = state_report("S3")
    policy(ctx, "requirements", "S3")
    cat = datasets.read(ctx, "outlet_catalogue", CODE)
    weights = datasets.read(ctx, "tile_weights", CODE)
    cref = datasets.read(ctx, "countries", CODE)
    req = requirements(cat)
    unknown = req.filter(~pl.col("legal_country_iso").is_in(cref["country_iso"].implode()))
    if unknown.height:
        raise EngineFailure(f"{CODE}.FK_COUNTRY", "country not in the reference countries table",
                            {"country": unknown["legal_country_iso"][0]})
    missing = req.filter(~pl.col("legal_country_iso").is_in(weights["country_iso"].unique().implode()))
    if missing.height:
        raise EngineFailure(f"{CODE}.MISSING_WEIGHTS", "no tile weights for a country that has outlets; "
                            "check results/reference/country_geometry covers it",
                            {"country": missing["legal_country_iso"][0], "dataset": "tile_weights"})
    if req["n_sites"].sum() != cat.height:
        raise EngineFailure(f"{CODE}.COUNTS_MISMATCH", "requirements do not sum to the catalogue", {})
    datasets.publish(ctx, req, "s3_requirements", CODE)
    rep.count(pairs=req.height, sites=int(req["n_sites"].sum()))
    rep.rng(None)
    rep.write(report_path(ctx, "S3"))
