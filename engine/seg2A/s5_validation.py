"""2A.S5: validation — one tzid per site, valid and in its country; the cache covers the horizon
and agrees with zoneinfo (pinned wheel); override and fallback caps; corridors; bundle and flag."""
from __future__ import annotations

import json

import numpy as np
import polars as pl

from engine.core import civil_time, contracts, html, tzcache, validation
from engine.core.context import RunContext
from engine.core.validation import Checks, load_datasets

from .common import KEY, SEG, load_policies, state_report, world_window
from .tz_resolve import share_limit as _share_limit  # one limit for S1's hard cap and S5's check
from .tz_tables import zone_tables

CODE = "2A.S5"
SAMPLES_PER_TZ = 64


def structural(d: dict, pol: dict, chk: Checks) -> None:
    st, sl = d["site_timezones"], d["site_locations"]
    same = st.select(KEY).sort(KEY).equals(sl.select(KEY).sort(KEY))
    chk.add("one_tzid_per_site", same and st.height == sl.height, figure=st.height, threshold=sl.height)
    tables = zone_tables()
    known = st["tzid"].is_in(sorted(tables.zones)).all()
    chk.add("tzid_in_pinned_tzdb", bool(known))
    member = tables.member_mask(st["tzid"].to_numpy(), st["legal_country_iso"].to_numpy())
    outside = int((~member & (st["tzid_source"] != "override").to_numpy()).sum())
    chk.add("tzid_in_country_or_override", outside == 0, figure=outside, threshold=0)
    n = max(st.height, 1)
    tzp = pol["tz_policy"]
    ov = float((st["tzid_source"] == "override").sum()) / n
    lim = _share_limit(tzp["max_override_share"], n)
    chk.add("override_share", ov <= lim, figure=ov, threshold=lim)
    fb = float((st["tzid_source"] == "country_fallback").sum()) / n
    lim = _share_limit(tzp["max_fallback_share"], n)
    chk.add("fallback_share", fb <= lim, figure=fb, threshold=lim)
    nudged = float(st["nudge_lat_deg"].is_not_null().sum()) / n
    c = pol["validation"]["max_nudged_share"]
    chk.add("nudged_share", nudged <= c["value"], figure=nudged, threshold=c["value"], severity=c["severity"])


def cache_checks(ctx: RunContext, d: dict, chk: Checks) -> None:
    """Coverage of this world's horizon, and utc_to_local against zoneinfo for every used tzid."""
    man = json.loads((contracts.dataset_path(ctx.results, "tz_timetable_cache") / "_manifest.json").read_text())
    used = sorted(d["site_timezones"]["tzid"].unique())
    lo, hi = world_window(ctx)
    try:
        tzcache.check_coverage(man["tz_cache"], used, lo, hi, short_code=f"{CODE}.TZ_CACHE_HORIZON_SHORT",
                               missing_code=f"{CODE}.TZID_NOT_IN_CACHE")
        chk.add("cache_covers_horizon", True, detail=f"{lo}..{hi}")
    except Exception as exc:                                      # noqa: BLE001 (reported as a failed check)
        chk.add("cache_covers_horizon", False, detail=str(exc))
        return
    cache = civil_time.flatten_cache(d["tz_timetable_cache"].to_arrow(), CODE)
    t0, t1 = tzcache.to_unix_seconds(lo), tzcache.to_unix_seconds(hi, end=True)
    rng = np.random.default_rng(0)                                 # sample positions only, not world data
    ts = rng.integers(t0, t1, size=(len(used), SAMPLES_PER_TZ)) * 1_000_000
    idx = cache.tz_index(used, f"{CODE}.TZID_NOT_IN_CACHE")
    local = civil_time.utc_to_local(ts.reshape(-1), np.repeat(idx, SAMPLES_PER_TZ), cache).reshape(ts.shape)
    bad = 0
    for i, tz in enumerate(used):                                  # one zoneinfo per tzid, the reference
        zi = tzcache.wheel_zoneinfo(tz, CODE)
        # the offset at the UTC instant: zi.utcoffset(dt) would read dt's fields as local wall time
        ref = np.array([int(_utc(s // 1_000_000).astimezone(zi).utcoffset().total_seconds())
                        for s in ts[i]]) * 1_000_000
        bad += int((local[i] - ts[i] != ref).sum())
    chk.add("civil_time_matches_zoneinfo", bad == 0, figure=bad, threshold=0,
            detail=f"{len(used)} tzids x {SAMPLES_PER_TZ} instants")


def _utc(s: int):
    import datetime as dt
    return dt.datetime.fromtimestamp(int(s), dt.UTC)


def corridors(d: dict, pol: dict, chk: Checks) -> dict:
    c = pol["validation"]["multi_zone_spread"]
    per = d["site_timezones"].group_by("legal_country_iso").agg(pl.len().alias("sites"), pl.col("tzid").n_unique())
    out = {}
    for iso in c["countries"]:
        row = per.filter(pl.col("legal_country_iso") == iso)
        if not row.height:
            continue
        sites, tzids = int(row["sites"][0]), int(row["tzid"][0])
        need_sites, need_tz = (c["us_min_sites"], c["us_min_tzids"]) if iso == "US" else (c["min_sites"], c["min_tzids"])
        if sites >= need_sites:
            chk.add(f"multi_zone_spread_{iso}", tzids >= need_tz, figure=tzids, threshold=need_tz, severity=c["severity"])
        out[iso] = {"sites": sites, "tzids": tzids}
    return out


def run(ctx: RunContext) -> None:
    rep = state_report("S5")
    pol = load_policies(ctx, "S5")
    chk = Checks(CODE)
    d = load_datasets(ctx, SEG, chk, extra=("site_locations",))
    legality = json.loads(ctx.io.input("legality").read_text())
    spread = {}
    if not chk.failed:
        structural(d, pol, chk)
        cache_checks(ctx, d, chk)
        chk.add("legality_report_pass", legality["status"] == "PASS", detail=",".join(legality["missing_tzids"]))
        spread = corridors(d, pol, chk)
    st = d.get("site_timezones")
    sections = []
    if st is not None and st.height:
        top = st.group_by("tzid").len().sort(["len", "tzid"], descending=[True, False]).head(15)
        sections.append(("Sites by time zone (top 15)", html.bars(list(zip(top["tzid"], top["len"])))))
        src = st.group_by("tzid_source").len().sort("tzid_source")
        sections.append(("How each tzid was decided", html.bars(list(zip(src["tzid_source"], src["len"])))))
    page = validation.page(ctx, chk, "Segment 2A: civil time for every site", sections)
    validation.finish(ctx, chk, rep, page, {"legality_report.json": legality, "multi_zone_spread.json": spread})
