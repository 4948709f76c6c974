"""5A.S5: validation — shapes sum to 1, weekly totals equal the configured volumes, the
(merchant, zone) domain matches the merchant-zones rule both ways and every scenario's UTC
surface covers it with H buckets; no RNG was used; bundle and flag."""
from __future__ import annotations

import numpy as np
import polars as pl

from engine.core import html, validation
from engine.core.context import RunContext
from engine.core.segment import Segment
from engine.core.validation import Checks, load_datasets

from . import classify, horizon
from .common import SEGMENT
from .states import policies

CODE = "5A.S5"
MZ = ["merchant_id", "zone_representation"]
_SEG = Segment(SEGMENT)


def run(ctx: RunContext) -> None:
    rep = _SEG.report("S5")
    policies(ctx, "S5")
    chk = Checks(CODE)
    d = load_datasets(ctx, SEGMENT, chk, extra=("zone_alloc", "site_timezones"))
    metrics = {}
    if not chk.failed:
        prof, shp, bl, utc = (d["merchant_zone_profile_5A"], d["class_zone_shape_5A"],
                              d["merchant_zone_baseline_local_5A"], d["merchant_zone_scenario_utc_5A"])
        sums = shp.group_by("demand_class", "channel_group", "legal_country_iso", "zone_representation") \
            .agg(pl.col("shape_value").sum())
        dev = float((sums["shape_value"] - 1.0).abs().max()) if sums.height else 0.0
        chk.add("shapes_sum_to_one", dev <= 1e-12, figure=dev, threshold=1e-12)
        wk = bl.group_by(MZ).agg(pl.col("lambda_local_base").sum(), pl.col("tail_lift_applied").first()) \
            .join(prof.select(*MZ, "weekly_volume_expected"), on=MZ, how="full", coalesce=True)
        rel = ((wk["lambda_local_base"] - wk["weekly_volume_expected"] * wk["tail_lift_applied"]).abs()
               / wk["weekly_volume_expected"].clip(lower_bound=1.0))
        worst = float(rel.max()) if rel.len() and rel.null_count() == 0 else float("inf")
        chk.add("weekly_totals_equal_volume", worst <= 1e-9, figure=worst, threshold=1e-9)
        want = classify.merchant_zones(d["zone_alloc"], d["site_timezones"]).select(MZ).unique()
        have = prof.select(MZ).unique()
        missing, extra = want.join(have, on=MZ, how="anti").height, have.join(want, on=MZ, how="anti").height
        chk.add("profile_domain_matches_zones", missing == 0 and extra == 0, figure=missing + extra, threshold=0,
                detail=f"missing {missing}, extra {extra}")
        hz = horizon.horizon_from_config(ctx.config, code_prefix=CODE)
        per = utc.group_by("scenario_id", *MZ).len()
        bad_h = int((per["len"] != hz.n_buckets).sum())
        scen = utc["scenario_id"].n_unique()
        cover = per.select(MZ).unique().join(have, on=MZ, how="anti").height + \
            have.join(per.select(MZ).unique(), on=MZ, how="anti").height
        chk.add("utc_surface_covers_domain", bad_h == 0 and cover == 0, figure=bad_h + cover, threshold=0,
                detail=f"{scen} scenario(s) x {have.height} zones x {hz.n_buckets} buckets")
        lam = utc["lambda_utc_scenario"].to_numpy()
        chk.add("lambda_finite_nonnegative", bool(np.isfinite(lam).all() and (lam >= 0).all()))
        totals = utc.group_by("scenario_id").agg(pl.col("lambda_utc_scenario").sum()).sort("scenario_id")
        metrics = {"expected_arrivals": dict(zip(totals["scenario_id"], totals["lambda_utc_scenario"])),
                   "merchant_zones": have.height, "buckets": hz.n_buckets}
        rng_used = [s for s in ("S1", "S2", "S3", "S4") if (ctx.results / SEGMENT / "rng" / f"{s}.trace.json").exists()]
        chk.add("no_rng_used", not rng_used, detail=",".join(rng_used))
    sections = []
    if metrics:
        sections.append(("Expected arrivals per scenario", html.bars(list(metrics["expected_arrivals"].items()))))
        utc = d["merchant_zone_scenario_utc_5A"]
        hourly = utc.group_by("utc_horizon_bucket_index").agg(pl.col("lambda_utc_scenario").sum()) \
            .sort("utc_horizon_bucket_index").head(48)
        sections.append(("Expected arrivals per UTC hour (first 48 buckets, all scenarios)",
                         html.bars([(str(h), v) for h, v in zip(hourly["utc_horizon_bucket_index"],
                                                                hourly["lambda_utc_scenario"])])))
    page = validation.page(ctx, chk, "Segment 5A: intensity surfaces and the scenario calendar", sections)
    validation.finish(ctx, chk, rep, page, {"metrics.json": metrics})
