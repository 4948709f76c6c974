"""1B.S7: absolute coordinates = tile centroid + jitter, re-checked against tile and catalogue (RNG-free)."""
from __future__ import annotations

import polars as pl

from engine.core import datasets
from engine.core.context import RunContext
from engine.core.errors import EngineFailure

from .common import report_path, state_report

CODE = "1B.S7"
KEY = ["merchant_id", "legal_country_iso", "site_order"]
TOL = 1e-9


def synthesise(s5: pl.DataFrame, s6: pl.DataFrame, bounds: pl.DataFrame) -> pl.DataFrame:
    j = (s5.join(s6, on=KEY, how="full", coalesce=True, suffix="_s6")
         .join(bounds.rename({"country_iso": "legal_country_iso"}), on=["legal_country_iso", "tile_id"], how="left"))
    if j["tile_id_s6"].null_count() or j["tile_id"].null_count():
        raise EngineFailure(f"{CODE}.ROW_MISSING", "S5 and S6 rows differ", {})
    if (j["tile_id"] != j["tile_id_s6"]).any():
        raise EngineFailure(f"{CODE}.TILE_FK_VIOLATION", "S6 changed a site's tile", {})
    if j["centroid_lat_deg"].null_count():
        raise EngineFailure(f"{CODE}.TILE_FK_VIOLATION", "site tile missing from tile_bounds", {})
    j = j.with_columns((pl.col("centroid_lon_deg") + pl.col("delta_lon_deg")).alias("lon_deg"),
                       (pl.col("centroid_lat_deg") + pl.col("delta_lat_deg")).alias("lat_deg"))
    outside = j.filter((pl.col("lon_deg") < pl.col("min_lon_deg") - TOL) | (pl.col("lon_deg") > pl.col("max_lon_deg") + TOL)
                       | (pl.col("lat_deg") < pl.col("min_lat_deg") - TOL) | (pl.col("lat_deg") > pl.col("max_lat_deg") + TOL))
    if outside.height:
        raise EngineFailure(f"{CODE}.POINT_OUTSIDE_PIXEL", "site outside its tile rectangle",
                            {"merchant_id": outside["merchant_id"][0], "country": outside["legal_country_iso"][0]})
    return j.select(*KEY, "tile_id", "lon_deg", "lat_deg").sort(KEY)


def run(ctx: RunContext) -> None:
    rep = state_report("S7")
    s5 = datasets.read(ctx, "s5_site_tile_assignment", CODE)
    s6 = datasets.read(ctx, "s6_site_jitter", CODE)
    bounds = datasets.read(ctx, "tile_bounds", CODE)
    cat = datasets.read(ctx, "outlet_catalogue", CODE).select(KEY)
    out = synthesise(s5, s6, bounds)
    if out.height != cat.height or out.select(KEY).join(cat, on=KEY, how="anti").height:
        raise EngineFailure(f"{CODE}.1A_COVERAGE_FAIL", "site keys differ from 1A's outlet_catalogue", {})
    datasets.publish(ctx, out, "s7_site_synthesis", CODE)
    rep.count(sites=out.height)
    rep.rng(None)
    rep.write(report_path(ctx, "S7"))
