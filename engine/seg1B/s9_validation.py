"""1B.S9: re-derive conservation, geometry and RNG budgets; realism corridors; bundle + flag."""
from __future__ import annotations

import numpy as np
import polars as pl
import shapely

from engine.core import html, validation
from engine.core.context import RunContext
from engine.core.validation import Checks, frames_equal, load_datasets, rng_accounting

from . import landmask, s4_alloc, s5_assign, s6_jitter
from .common import POLICIES, SEG, load_geometry, policy, state_report

CODE = "1B.S9"
KEY = ["merchant_id", "legal_country_iso", "site_order"]
PAIR = ["merchant_id", "legal_country_iso"]


def structural(d: dict, chk: Checks) -> None:
    cat = d["outlet_catalogue"].select(KEY)
    for ds in ("s5_site_tile_assignment", "s6_site_jitter", "s7_site_synthesis", "site_locations"):
        k = d[ds].select(KEY)
        ok = k.height == cat.height and k.join(cat, on=KEY, how="anti").height == 0
        chk.add(f"key_parity_{ds}", ok, figure=k.height, threshold=cat.height)
    n3 = d["s3_requirements"]
    n4 = d["s4_alloc_plan"].group_by(PAIR).agg(pl.col("n_sites_tile").sum().alias("n4"))
    n5 = d["s5_site_tile_assignment"].group_by(PAIR).len("n5")
    n8 = d["site_locations"].group_by(PAIR).len("n8")
    j = n3.join(n4, on=PAIR, how="full", coalesce=True).join(n5, on=PAIR, how="full", coalesce=True) \
        .join(n8, on=PAIR, how="full", coalesce=True).fill_null(-1)
    bad = j.filter((pl.col("n_sites") != pl.col("n4")) | (pl.col("n4") != pl.col("n5")) | (pl.col("n5") != pl.col("n8")))
    chk.add("count_conservation", bad.height == 0, figure=bad.height, threshold=0)
    w = d["tile_weights"]
    k = 10 ** int(w["dp"][0]) if w.height else 0
    sums = w.group_by("country_iso").agg(pl.col("weight_fp").sum())
    chk.add("weights_sum_to_10_pow_dp", bool((sums["weight_fp"] == k).all()), figure=int(sums["weight_fp"].max() or 0),
            threshold=k)
    chk.add("weights_cover_tile_index", frames_equal(w.select("country_iso", "tile_id"),
                                                     d["tile_index"].select("country_iso", "tile_id")))
    tiles = d["tile_index"].select(pl.col("country_iso").alias("legal_country_iso"), "tile_id")
    for ds in ("s4_alloc_plan", "s5_site_tile_assignment", "s6_site_jitter", "s7_site_synthesis"):
        miss = d[ds].join(tiles, on=["legal_country_iso", "tile_id"], how="anti").height
        chk.add(f"tile_fk_{ds}", miss == 0, figure=miss, threshold=0)


def geometry(ctx: RunContext, d: dict, chk: Checks) -> None:
    """Every egress point in its tile rectangle and (shapely, not the S6 kernel) in its country."""
    s7 = d["s7_site_synthesis"].join(d["tile_bounds"].rename({"country_iso": "legal_country_iso"}),
                                     on=["legal_country_iso", "tile_id"], how="left")
    tol = 1e-9
    out_tile = s7.filter((pl.col("lon_deg") < pl.col("min_lon_deg") - tol) | (pl.col("lon_deg") > pl.col("max_lon_deg") + tol)
                         | (pl.col("lat_deg") < pl.col("min_lat_deg") - tol) | (pl.col("lat_deg") > pl.col("max_lat_deg") + tol)
                         | pl.col("min_lon_deg").is_null()).height
    chk.add("points_inside_tile", out_tile == 0, figure=out_tile, threshold=0)
    geo = load_geometry(ctx, CODE)
    gmap = dict(zip(geo["country_iso"], geo["geom"]))
    sl = d["site_locations"]
    outside = 0
    for (iso,), part in sl.group_by(["legal_country_iso"]):          # per country, vectorised inside
        g = gmap.get(iso)
        if g is None:
            outside += part.height
            continue
        shapely.prepare(g)
        outside += int((~shapely.intersects_xy(g, part["lon_deg"].to_numpy(), part["lat_deg"].to_numpy())).sum())
    chk.add("points_inside_country", outside == 0, figure=outside, threshold=0)


def replay(ctx: RunContext, d: dict, pol: dict, chk: Checks) -> dict:
    out = {}
    plan, st, end = s4_alloc.allocate(ctx, d["s3_requirements"], d["tile_weights"],
                                      pol["alloc_plan"]["remainder_mode"] == "sampled")
    chk.add("replay_s4_alloc_plan", frames_equal(plan, d["s4_alloc_plan"]))
    out[f"{SEG}.alloc_remainder"] = validation.totals(end)
    sites, st, end = s5_assign.assign(ctx, d["s4_alloc_plan"])
    chk.add("replay_s5_assignment", frames_equal(sites, d["s5_site_tile_assignment"]))
    out[f"{SEG}.site_tile_assign"] = validation.totals(end)
    chk.add("s5_one_draw_per_site", out[f"{SEG}.site_tile_assign"]["draws"] == sites.height,
            figure=out[f"{SEG}.site_tile_assign"]["draws"], threshold=sites.height)
    df, geom_rings = s6_jitter.site_frame(ctx, CODE)
    j = s6_jitter.jitter(ctx, df, geom_rings, pol["jitter"]["max_attempts"])
    s6 = d["s6_site_jitter"]
    same = (np.array_equal(j.attempts, s6["attempts"].to_numpy())
            and np.array_equal(j.fallback, s6["fallback"].to_numpy())
            and np.array_equal(j.lon - df["centroid_lon_deg"].to_numpy(), s6["delta_lon_deg"].to_numpy())
            and np.array_equal(j.lat - df["centroid_lat_deg"].to_numpy(), s6["delta_lat_deg"].to_numpy()))
    chk.add("replay_s6_jitter", same)
    t6 = validation.totals(j.end)
    out[f"{SEG}.in_cell_jitter"] = t6
    chk.add("s6_blocks_equal_attempts", t6["blocks"] == int(s6["attempts"].sum()) and t6["draws"] == 2 * t6["blocks"],
            figure=t6["blocks"], threshold=int(s6["attempts"].sum()))
    return out


def gini(x: np.ndarray) -> float:
    x = np.sort(x.astype(np.float64))
    n = len(x)
    return float((2 * np.arange(1, n + 1) - n - 1).dot(x) / (n * x.sum())) if n and x.sum() else 0.0


def corridors(d: dict, pol: dict, chk: Checks) -> dict:
    v = pol["validation"]
    c = v["corridors"]
    sl, s5, s6, w = d["site_locations"], d["s5_site_tile_assignment"], d["s6_site_jitter"], d["tile_weights"]
    n = sl.height
    per_c = s5.group_by("legal_country_iso").agg(pl.len().alias("sites"), pl.col("tile_id").n_unique().alias("tiles"))
    universe = w.group_by(pl.col("country_iso").alias("legal_country_iso")).len("universe")
    big = per_c.join(universe, on="legal_country_iso").filter(
        (pl.col("sites") >= v["min_sites_for_country_metrics"]) & (pl.col("universe") >= v["min_tiles_for_country_metrics"]))
    # Collapse test: a tile may hold more than the cap only as far as its own prior weight
    # explains (a capital-dominated country such as QA puts ~60% of its weight on one tile).
    k_total = 10 ** int(w["dp"][0]) if w.height else 1
    top = (s5.group_by("legal_country_iso", "tile_id").len()
           .join(w.select(pl.col("country_iso").alias("legal_country_iso"), "tile_id", "weight_fp"),
                 on=["legal_country_iso", "tile_id"], how="left")
           .join(big, on="legal_country_iso")
           .with_columns((pl.col("len") / pl.col("sites")).alias("share"), (pl.col("weight_fp") / k_total).alias("wt"))
           .with_columns(pl.max_horizontal(pl.lit(c["max_single_tile_share_per_country"]["value"]),
                                           pl.col("wt") + 3 * (pl.col("wt") * (1 - pl.col("wt")) / pl.col("sites")).sqrt())
                         .alias("allowed"))
           .with_columns((pl.col("share") - pl.col("allowed")).alias("excess")))
    metrics = {}

    def gate(name, value, ok, limit):
        metrics[name] = {"value": value, "threshold": limit, "severity": c[name]["severity"], "pass": bool(ok)}
        chk.add(f"corridor_{name}", bool(ok), figure=value, threshold=limit, severity=c[name]["severity"])

    worst = top.sort("excess", descending=True).head(1)
    mx = float(worst["share"][0]) if worst.height else 0.0
    allowed = float(worst["allowed"][0]) if worst.height else c["max_single_tile_share_per_country"]["value"]
    gate("max_single_tile_share_per_country", mx, mx <= allowed, allowed)
    ratio = float((big["tiles"] / big["sites"]).min()) if big.height else 1.0
    gate("min_distinct_tile_ratio_per_country", ratio, ratio >= c["min_distinct_tile_ratio_per_country"]["value"],
         c["min_distinct_tile_ratio_per_country"]["value"])
    dup = (n - sl.select("lon_deg", "lat_deg").n_unique()) / n if n else 0.0
    lim = c["max_duplicate_point_share"]["value"]
    gate("max_duplicate_point_share", dup, dup <= lim, lim)
    fb = float(s6["fallback"].mean()) if n else 0.0
    gate("max_fallback_share", fb, fb <= c["max_fallback_share"]["value"], c["max_fallback_share"]["value"])
    ma = float(s6["attempts"].cast(pl.Float64).mean()) if n else 0.0
    gate("max_mean_attempts", ma, ma <= c["max_mean_attempts"]["value"], c["max_mean_attempts"]["value"])
    pop = s5.join(w.select(pl.col("country_iso").alias("legal_country_iso"), "tile_id", "population"),
                  on=["legal_country_iso", "tile_id"], how="left")
    ps = float((pop["population"].fill_null(0) > 0).mean()) if n else 0.0
    gate("min_populated_tile_share", ps, ps >= c["min_populated_tile_share"]["value"], c["min_populated_tile_share"]["value"])
    pairs = s5.group_by(PAIR).agg(pl.len(), pl.col("tile_id").n_unique().alias("t")).filter(pl.col("len") >= 3)
    col = float((pairs["t"] == 1).mean()) if pairs.height else 0.0
    gate("pair_collapse_share", col, col <= c["pair_collapse_share"]["value"], c["pair_collapse_share"]["value"])
    counts = per_c["sites"].sort(descending=True).to_numpy()
    k = lambda q: max(int(np.ceil(q * len(counts))), 1)
    metrics["report_only"] = {
        "country_gini": gini(counts), "countries_with_sites": int(len(counts)),
        "top1pct_country_share": float(counts[:k(0.01)].sum() / n) if n else 0.0,
        "top5pct_country_share": float(counts[:k(0.05)].sum() / n) if n else 0.0,
        "top10pct_country_share": float(counts[:k(0.10)].sum() / n) if n else 0.0,
        "southern_hemisphere_share": float((sl["lat_deg"] < 0).mean()) if n else 0.0,
    }
    return metrics


def summary_page(ctx: RunContext, d: dict, chk: Checks, metrics: dict) -> str:
    sl = d.get("site_locations")
    sections = [("Realism corridors", html.table([{"metric": k, **v} for k, v in metrics.items() if k != "report_only"])),
                ("Country mix (report only)", html.table([metrics.get("report_only", {})]))]
    if sl is not None and sl.height:
        band = sl.with_columns((pl.col("lat_deg") // 10 * 10).cast(pl.Int32).alias("band")).group_by("band").len() \
            .sort("band", descending=True)
        sections.append(("Outlets by 10° latitude band", html.bars([(f"{b}°", n) for b, n in zip(band["band"], band["len"])])))
    return validation.page(ctx, chk, "Segment 1B: where every outlet stands", sections)


def run(ctx: RunContext) -> None:
    rep = state_report("S9")
    pol = {name: policy(ctx, name, "S9") for name in POLICIES}
    chk = Checks(CODE)
    d = load_datasets(ctx, SEG, chk, extra=("outlet_catalogue",))
    acct, metrics = {}, {}
    if not chk.failed:
        structural(d, chk)
        geometry(ctx, d, chk)
        acct = rng_accounting(ctx, SEG, ("S4", "S5", "S6"), replay(ctx, d, pol, chk), chk)
        metrics = corridors(d, pol, chk)
        metrics["max_sites_at_sea_share"] = landmask.gate(d["site_locations"], pol["validation"]["sites_at_sea"],
                                                          ctx.world["preset"], chk)
    validation.finish(ctx, chk, rep, summary_page(ctx, d, chk, metrics),
                      {"rng_accounting.json": {"families": acct}, "realism_metrics.json": metrics})
