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
        # sums in a fixed order (numpy over sorted rows): a thread-order float sum must not reach the flag
        shp = shp.sort("demand_class", "channel_group", "legal_country_iso", "zone_representation", "bucket_index")
        S = shp["shape_value"].to_numpy().reshape(-1, 168)
        dev = float(np.abs(S.sum(axis=1) - 1.0).max()) if S.size else 0.0
        chk.add("shapes_sum_to_one", dev <= 1e-12, figure=dev, threshold=1e-12)
        bl = bl.sort(*MZ, "bucket_index")
        B = bl["lambda_local_base"].to_numpy().reshape(-1, 168)
        keys = bl.filter(pl.col("bucket_index") == 0).select(*MZ, "tail_lift_applied")
        wk = keys.join(prof.select(*MZ, "weekly_volume_expected"), on=MZ, how="left", maintain_order="left")
        ok_keys = keys.height == prof.height and wk["weekly_volume_expected"].null_count() == 0
        w = wk["weekly_volume_expected"].to_numpy() * wk["tail_lift_applied"].to_numpy() if ok_keys else None
        worst = float((np.abs(B.sum(axis=1) - w) / np.maximum(w, 1.0)).max()) if ok_keys and len(w) else float("inf")
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
        utc = utc.sort("scenario_id", *MZ, "channel_group", "utc_horizon_bucket_index")
        totals = {sc: float(np.sum(utc.filter(pl.col("scenario_id") == sc)["lambda_utc_scenario"].to_numpy()))
                  for sc in sorted(utc["scenario_id"].unique())}
        metrics = {"expected_arrivals": totals, "merchant_zones": have.height, "buckets": hz.n_buckets}
        rng_used = [s for s in ("S1", "S2", "S3", "S4") if (ctx.results / SEGMENT / "rng" / f"{s}.trace.json").exists()]
        chk.add("no_rng_used", not rng_used, detail=",".join(rng_used))
    sections = []
    if metrics:
        sections.append(("Expected arrivals per scenario",
                         html.bars([(k, round(v, 3)) for k, v in metrics["expected_arrivals"].items()])))
        utc = d["merchant_zone_scenario_utc_5A"].sort("scenario_id", *MZ, "channel_group", "utc_horizon_bucket_index")
        h = utc["utc_horizon_bucket_index"].to_numpy()
        per_hour = np.bincount(h, weights=utc["lambda_utc_scenario"].to_numpy())[:48]   # sequential: fixed order
        sections.append(("Expected arrivals per UTC hour (first 48 buckets, all scenarios)",
                         html.bars([(str(i), round(float(v), 3)) for i, v in enumerate(per_hour)])))
    page = validation.page(ctx, chk, "Segment 5A: intensity surfaces and the scenario calendar", sections)
    validation.finish(ctx, chk, rep, page, {"metrics.json": metrics})
