"""5A.S5: validation — shapes sum to 1, weekly totals equal the configured volumes, the
(merchant, zone) domain matches the merchant-zones rule both ways and every scenario's UTC
surface covers it with H buckets; no RNG was used; bundle and flag.

The UTC surface (~1e8 rows on full) is streamed row group by row group (`engine.core.scan`), never
held whole: per-(scenario, merchant, zone) row counts, λ checks, per-scenario totals (row-group sums
combined with fsum) and the per-hour profile are accumulated in file order, which is fixed by the data.
"""
from __future__ import annotations

import math

import numpy as np
import polars as pl

from engine.core import contracts, html, validation
from engine.core.context import RunContext
from engine.core.errors import EngineFailure
from engine.core.scan import scan_dataset
from engine.core.segment import Segment
from engine.core.validation import Checks, load_datasets

from . import classify, horizon
from .common import SEGMENT
from .states import policies

CODE = "5A.S5"
MZ = ["merchant_id", "zone_representation"]
UTC = "merchant_zone_scenario_utc_5A"
_SEG = Segment(SEGMENT)


def scan_utc(ctx: RunContext, chk: validation.Checks, H: int) -> dict | None:
    """One pass over the UTC surface: rows per (scenario, merchant, zone), λ finite and >= 0, totals
    per scenario and Σλ per UTC bucket (all scenarios). None (and a failed schema check) if unreadable."""
    runs, sums, per_h = [], {}, np.zeros(H, np.float64)
    rows, finite, off_grid = 0, True, 0
    try:
        for part, t in scan_dataset(ctx, UTC, CODE):
            sc = part["scenario_id"]
            mid = t.column("merchant_id").to_numpy()
            z = t.column("zone_representation").chunk(0)
            zi = z.indices.to_numpy()
            h = t.column("utc_horizon_bucket_index").to_numpy()
            lam = t.column("lambda_utc_scenario").to_numpy()
            cut = np.flatnonzero(np.r_[True, (mid[1:] != mid[:-1]) | (zi[1:] != zi[:-1])])
            runs.append(pl.DataFrame({"scenario_id": [sc] * len(cut), "merchant_id": mid[cut],
                                      "zone_representation": z.dictionary.take(zi[cut]).to_pylist(),
                                      "len": np.diff(np.r_[cut, len(mid)])},
                                     schema={"scenario_id": pl.String, "merchant_id": pl.UInt64,
                                             "zone_representation": pl.String, "len": pl.Int64}))
            finite &= bool(np.isfinite(lam).all() and (lam >= 0).all())
            sums.setdefault(sc, []).append(float(np.sum(lam)))
            on = (h >= 0) & (h < H)
            off_grid += int(h.size - on.sum())
            per_h += np.bincount(h[on], weights=lam[on], minlength=H)
            rows += t.num_rows
    except EngineFailure as exc:
        chk.add(f"schema_{UTC}", False, detail=exc.line())
        return None
    chk.add(f"schema_{UTC}", True, figure=rows)
    per = (pl.concat(runs).group_by("scenario_id", *MZ).agg(pl.col("len").sum()) if runs else
           pl.DataFrame(schema={"scenario_id": pl.String, "merchant_id": pl.UInt64, "zone_representation": pl.String,
                                "len": pl.Int64}))
    return {"per": per, "finite": finite, "per_hour": per_h, "off_grid": off_grid,
            "totals": {sc: math.fsum(v) for sc, v in sorted(sums.items())}}


def run(ctx: RunContext) -> None:
    rep = _SEG.report("S5")
    policies(ctx, "S5")
    chk = Checks(CODE)
    # every 5A dataset but the UTC surface is small: read whole ("" = no segment, exactly these ids)
    small = tuple(d for d, e in contracts.dictionary().items() if e["segment"] == SEGMENT and d != UTC)
    d = load_datasets(ctx, "", chk, extra=small + ("zone_alloc", "site_timezones"))
    hz = horizon.horizon_from_config(ctx.config, code_prefix=CODE)
    u = scan_utc(ctx, chk, hz.n_buckets)
    metrics = {}
    if not chk.failed:
        prof, shp, bl = (d["merchant_zone_profile_5A"], d["class_zone_shape_5A"], d["merchant_zone_baseline_local_5A"])
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
        per = u["per"]
        bad_h = int((per["len"] != hz.n_buckets).sum()) + u["off_grid"]
        scen = per["scenario_id"].n_unique()
        cover = per.select(MZ).unique().join(have, on=MZ, how="anti").height + \
            have.join(per.select(MZ).unique(), on=MZ, how="anti").height
        chk.add("utc_surface_covers_domain", bad_h == 0 and cover == 0, figure=bad_h + cover, threshold=0,
                detail=f"{scen} scenario(s) x {have.height} zones x {hz.n_buckets} buckets")
        chk.add("lambda_finite_nonnegative", u["finite"])
        metrics = {"expected_arrivals": u["totals"], "merchant_zones": have.height, "buckets": hz.n_buckets}
        rng_used = [s for s in ("S1", "S2", "S3", "S4") if (ctx.results / SEGMENT / "rng" / f"{s}.trace.json").exists()]
        chk.add("no_rng_used", not rng_used, detail=",".join(rng_used))
    sections = []
    if metrics:
        sections.append(("Expected arrivals per scenario",
                         html.bars([(k, round(v, 3)) for k, v in metrics["expected_arrivals"].items()])))
        per_hour = u["per_hour"][:48]                  # accumulated in file order: fixed
        sections.append(("Expected arrivals per UTC hour (first 48 buckets, all scenarios)",
                         html.bars([(str(i), round(float(v), 3)) for i, v in enumerate(per_hour)])))
    page = validation.page(ctx, chk, "Segment 5A: intensity surfaces and the scenario calendar", sections)
    validation.finish(ctx, chk, rep, page, {"metrics.json": metrics})
