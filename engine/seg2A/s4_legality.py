"""2A.S4: legality report — every used tzid in the cache, its DST gap and fold windows (RNG-free).

A gap (offset rises by Δ) is Δ minutes of local time that never occur; a fold (offset falls)
is |Δ| minutes that occur twice. 5A/5B place arrivals by these rules (engine.core.civil_time).
"""
from __future__ import annotations

import polars as pl

from engine.core import datasets
from engine.core.context import RunContext
from engine.core.errors import EngineFailure
from engine.core.identity import dumps
from engine.core.publish import publish_text

from .common import report_path, state_report

CODE = "2A.S4"


def legality(sites: pl.DataFrame, cache: pl.DataFrame) -> dict:
    used = sites.group_by("tzid").agg(pl.len().alias("n_sites"))
    w = (cache.sort("tzid", "transition_utc")
         .with_columns((pl.col("offset_min").cast(pl.Int32) - pl.col("offset_min").cast(pl.Int32)
                        .shift(1).over("tzid")).alias("delta"))
         .filter(pl.col("delta").is_not_null())
         .group_by("tzid").agg((pl.col("delta") > 0).sum().alias("gaps"), (pl.col("delta") < 0).sum().alias("folds"),
                               pl.col("delta").clip(lower_bound=0).max().alias("max_gap_min")))
    per = (used.join(w, on="tzid", how="left").with_columns(pl.col("gaps", "folds", "max_gap_min").fill_null(0))
           .sort("tzid"))
    missing = sorted(set(used["tzid"]) - set(cache["tzid"]))
    return {"status": "PASS" if not missing else "FAIL", "missing_tzids": missing,
            "counts": {"sites_total": sites.height, "tzids_total": used.height,
                       "gap_windows_total": int(per["gaps"].sum()), "fold_windows_total": int(per["folds"].sum())},
            "per_tzid": {r["tzid"]: {"n_sites": r["n_sites"], "gaps": r["gaps"], "folds": r["folds"],
                                     "max_gap_min": r["max_gap_min"]} for r in per.iter_rows(named=True)}}


def run(ctx: RunContext) -> None:
    rep = state_report("S4")
    sites = datasets.read(ctx, "site_timezones", CODE)
    cache = datasets.read(ctx, "tz_timetable_cache", CODE)
    report = legality(sites, cache)
    publish_text(dumps(report), ctx.io.output("legality"), CODE, overwrite=True)   # a FAIL report is written too
    if report["missing_tzids"]:
        raise EngineFailure(f"{CODE}.TZID_MISSING_IN_CACHE", "a site's tzid is not in tz_timetable_cache; rerun 2A.S3",
                            {"tzid": report["missing_tzids"][0]})
    rep.count(**report["counts"])
    rep.rng(None)
    rep.write(report_path(ctx, "S4"))
