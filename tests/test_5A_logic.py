"""5A logic layer on synthetic upstream frames (engine.seg5A.synthetic): S1 classes and volumes, S2 shapes,
S3 baselines, the S4 calendar, overlays and the DST-exact local->UTC projection, streaming and determinism."""
from __future__ import annotations

import datetime as dt
import math
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
import yaml

from engine.core.civil_time import flatten_cache
from engine.core.contracts import ROOT, arrow_type
from engine.core.errors import EngineFailure
from engine.core.publish import DatasetWriter, read_manifest
from engine.core.tzcache import build_tz_cache, wheel_zoneinfo
from engine.seg5A import baseline, calendar, classify, horizon, overlay, project, scale, shapes
from engine.seg5A.common import load_policies, u_det
from engine.seg5A.kernels import compose_local, ramp_factor
from engine.seg5A.synthetic import synthetic_upstream

PH = "5a" * 32


@pytest.fixture(scope="module")
def P():
    return load_policies()


def _profile(P, n=60, seed=3):
    up = synthetic_upstream(n, seed)
    z = classify.merchant_zones(up["zone_alloc"], up["site_timezones"])
    return classify.classify(z, up["merchant_ids"], up["virtual_classification_3B"], P["merchant_class_policy_5A"],
                             P["demand_scale_policy_5A"], PH)


def _world(P, prof, start="2026-03-02T00:00:00Z", days=30, cal=None, scenario="baseline_v1"):
    keys, S = shapes.build_shapes(prof, P["shape_library_5A"], P["zone_shape_modifiers_5A"], PH)
    base, w_eff, lift = baseline.baseline(prof, keys, S, P["demand_scale_policy_5A"], P["baseline_intensity_policy_5A"])
    hz = horizon.make_horizon(start, days, 60)
    tzids = sorted(set(prof["zone_representation"].to_list()), key=str.encode)
    tbl, _ = build_tz_cache(tzids, hz.start_us // 10**6 - 3 * 86400, hz.end_us // 10**6 + 3 * 86400)
    grid = horizon.build_local_grid(tzids, flatten_cache(tbl), hz)
    if cal is None:
        scen = next(s for s in P["scenario_horizon_config_5A"]["scenarios"] if s["scenario_id"] == scenario)
        cal = calendar.generate_calendar(scen, hz, sorted(set(prof["legal_country_iso"].to_list())), tzids,
                                         P["scenario_calendar_generator_5A"])
    calendar.validate_calendar(cal, P["scenario_overlay_policy_5A"], hz)
    sig = overlay.signatures(prof, grid, cal)
    F, bits = overlay.overlay_factors(cal, sig, grid, P["scenario_overlay_policy_5A"], P["overlay_ordering_policy_5A"])
    return dict(prof=prof, keys=keys, S=S, base=base, w_eff=w_eff, lift=lift, hz=hz, grid=grid, cal=cal, sig=sig,
                F=F, bits=bits)


def _utc(w, chunk_rows=2000) -> pa.Table:
    return pa.concat_tables(list(project.utc_chunks(w["prof"], w["base"], w["grid"], w["sig"], w["F"], chunk_rows)))


def _utc_matrix(w) -> np.ndarray:
    return _utc(w).column("lambda_utc_scenario").to_numpy().reshape(w["prof"].height, w["hz"].n_buckets)


def _local_matrix(w) -> np.ndarray:
    n, W = w["prof"].height, w["grid"].width
    out = np.empty(n * W)
    compose_local(w["base"], w["sig"].row_tz, w["sig"].row_sig, w["grid"].nL, w["grid"].k, w["F"], w["grid"].frac, W, out)
    return out.reshape(n, W)


def _hand_profile(rows) -> pl.DataFrame:
    """A profile with chosen zones: rows of (merchant_id, country, tzid, class, weekly volume)."""
    df = pl.DataFrame(rows, schema={"merchant_id": pl.UInt64, "legal_country_iso": pl.String,
                                    "zone_representation": pl.String, "demand_class": pl.String,
                                    "weekly_volume_expected": pl.Float64}, orient="row")
    return df.with_columns(pl.lit("card_present").alias("channel_group"), pl.lit(1, pl.Int32).alias("zone_site_count"),
                           pl.lit("primary_zone").alias("zone_role")).sort(["merchant_id", "zone_representation"])


HAND = [(11, "US", "America/New_York", "consumer_daytime", 1000.0),
        (11, "US", "America/Los_Angeles", "consumer_daytime", 500.0),
        (12, "US", "America/New_York", "office_hours", 700.0),
        (13, "GB", "Europe/London", "consumer_daytime", 800.0),
        (14, "IN", "Asia/Kolkata", "online_24h", 900.0),
        (15, "AU", "Australia/Lord_Howe", "evening_weekend", 600.0),
        (16, "NP", "Asia/Kathmandu", "consumer_daytime", 300.0)]


# ----------------------------------------------------------------------------------------------- policies
def test_policies_load_and_malformed_policy_is_named(P, tmp_path):
    assert len(P) == 10
    shutil.copytree(ROOT / "config", tmp_path / "config")
    p = tmp_path / "config" / "5A" / "demand_scale_policy_5A.yaml"
    p.write_text(p.read_text().replace("brand_size_exponent: 0.02", "brand_size_exponent: 0.9"))
    with pytest.raises(EngineFailure) as e:
        load_policies(tmp_path)
    assert e.value.code == "5A.S0.POLICY_SCHEMA_INVALID" and "brand_size_exponent" in str(e.value)
    assert "demand_scale_policy_5A.yaml" in str(e.value)


def test_policy_crossref_failure(P, tmp_path):
    shutil.copytree(ROOT / "config", tmp_path / "config")
    p = tmp_path / "config" / "5A" / "demand_scale_policy_5A.yaml"
    doc = yaml.safe_load(p.read_text())
    doc["class_params"] = doc["class_params"][1:]
    p.write_text(yaml.safe_dump(doc))
    with pytest.raises(EngineFailure) as e:
        load_policies(tmp_path)
    assert e.value.code == "5A.S0.POLICY_CROSSREF_INVALID"


def test_u_det_open_interval_and_stable():
    u = u_det("5A.scale|per_site", 12345, "US", "America/New_York", PH)
    assert 0 < u < 1 and u == u_det("5A.scale|per_site", 12345, "US", "America/New_York", PH)
    assert u != u_det("5A.scale|per_site", 12346, "US", "America/New_York", PH)


# ----------------------------------------------------------------------------------------------- S1
def test_merchant_zones_rule():
    za = pl.DataFrame({"merchant_id": [1, 1, 1, 2, 2], "legal_country_iso": ["US", "US", "US", "US", "CA"],
                       "tzid": ["America/New_York", "America/Chicago", "America/Denver", "America/Detroit",
                                "America/Detroit"],
                       "zone_site_count": [3, 0, 1, 1, 4]})
    st = pl.DataFrame({"merchant_id": [1, 1, 1, 1, 3], "legal_country_iso": ["US", "GB", "GB", "GB", "FR"],
                       "site_order": [1, 1, 2, 3, 1],
                       "tzid": ["America/New_York", "Europe/London", "Europe/London", "Europe/London", "Europe/Paris"]})
    z = classify.merchant_zones(za, st)
    got = {(r["merchant_id"], r["zone_representation"]): (r["legal_country_iso"], r["zone_site_count"])
           for r in z.iter_rows(named=True)}
    assert got == {(1, "America/Denver"): ("US", 1), (1, "America/New_York"): ("US", 3),   # zero-count Chicago dropped
                   (1, "Europe/London"): ("GB", 3),                                       # site_timezones for GB
                   (2, "America/Detroit"): ("CA", 5),                                     # shared tz: one zone, CA wins
                   (3, "Europe/Paris"): ("FR", 1)}
    with pytest.raises(EngineFailure) as e:
        classify.merchant_zones(pl.concat([za, za.head(1)]), st)
    assert e.value.code == "5A.S1.DOMAIN_DUPLICATE_KEY"


def test_profile_domain_is_exactly_the_merchant_zones(P):
    up = synthetic_upstream(80, 5)
    z = classify.merchant_zones(up["zone_alloc"], up["site_timezones"])
    prof = classify.classify(z, up["merchant_ids"], up["virtual_classification_3B"], P["merchant_class_policy_5A"],
                             P["demand_scale_policy_5A"], PH)
    k = ["merchant_id", "zone_representation"]
    assert prof.select(k).join(z.select(k), on=k, how="anti").height == 0
    assert z.select(k).join(prof.select(k), on=k, how="anti").height == 0
    assert prof.height == z.height and not prof.select(k).is_duplicated().any()
    w = prof["weekly_volume_expected"].to_numpy()
    assert np.all(np.isfinite(w)) and np.all(w > 0)
    assert set(prof["demand_class"]) <= set(P["merchant_class_policy_5A"]["demand_class_catalog"])
    cp = classify.class_profile(prof)
    assert cp.height == prof["merchant_id"].n_unique()
    assert np.allclose(cp["weekly_volume_total_expected"].to_numpy(),
                       prof.group_by("merchant_id").agg(pl.col("weekly_volume_expected").sum()).sort("merchant_id")
                       ["weekly_volume_expected"].to_numpy(), rtol=1e-12)


def test_class_tree_and_join_failure(P):
    m = pl.DataFrame({"merchant_id": [1, 2, 3, 4, 5, 6], "mcc": [5541, 5812, 5411, 7372, 5999, 1234],
                      "channel": ["card_present", "card_present", "card_not_present", "card_present", "card_present",
                                  "card_present"]})
    v = pl.DataFrame({"merchant_id": [4, 5], "virtual_mode": ["VIRTUAL_ONLY", "HYBRID"]})
    z = pl.DataFrame({"merchant_id": [1, 2, 3, 4, 5, 6], "legal_country_iso": ["US"] * 6,
                      "zone_representation": ["America/New_York"] * 6, "zone_site_count": [1] * 6},
                     schema_overrides={"merchant_id": pl.UInt64, "zone_site_count": pl.Int32})
    prof = classify.classify(z, m, v, P["merchant_class_policy_5A"], P["demand_scale_policy_5A"], PH)
    got = dict(zip(prof["merchant_id"].to_list(), zip(prof["demand_class"], prof["channel_group"], prof["sector"])))
    assert got[1] == ("fuel_convenience", "card_present", "fuel_auto")
    assert got[2] == ("evening_weekend", "card_present", "dining_entertainment")
    assert got[3] == ("online_24h", "card_not_present", "grocery_pharmacy")
    assert got[4][0] == "online_24h" and got[5] == ("online_24h", "mixed", "general_retail")
    assert got[6] == ("low_volume_tail", "card_present", "other")          # 1234: range 1..2999 -> other
    with pytest.raises(EngineFailure) as e:
        classify.classify(z, m.filter(pl.col("merchant_id") != 3), v, P["merchant_class_policy_5A"],
                          P["demand_scale_policy_5A"], PH)
    assert e.value.code == "5A.S1.MERCHANT_JOIN_FAILED"


# ----------------------------------------------------------------------------------------------- S2
def test_every_shape_sums_to_one_and_is_not_flat(P):
    lib, zm = P["shape_library_5A"], P["zone_shape_modifiers_5A"]
    classes = P["merchant_class_policy_5A"]["demand_class_catalog"]
    rows = [(c, cg, iso, tz) for c in classes for cg in ("card_present", "card_not_present", "mixed")
            for iso, tz in [("US", "America/New_York"), ("SA", "Asia/Riyadh"), ("IN", "Asia/Kolkata"),
                            ("GB", "Europe/London"), ("JP", "Asia/Tokyo"), ("DE", "Europe/Berlin")]]
    keys = pl.DataFrame(rows, schema=shapes.SHAPE_KEY, orient="row")
    table, S = shapes.build_shapes(keys, lib, zm, PH)
    assert S.shape == (len(rows), 168)
    assert np.all(S >= 0) and np.max(np.abs(S.sum(axis=1) - 1.0)) <= 1e-12
    assert np.all(S.max(axis=1) / S.min(axis=1) >= 1.5)
    real = shapes.realism(table, S, lib, zm)
    assert all(real["pass"].values()), real
    # every (class, cg) resolves to one of its rule's 3 variants
    assert set(table["template_id"].str.extract(r"\.(v\d)$").to_list()) <= {"v1", "v2", "v3"}
    # lunch and evening peaks: consumer_daytime card_present peaks at 12-13 or 17-18 on a weekday
    cd = S[(table["demand_class"] == "consumer_daytime").to_numpy() & (table["legal_country_iso"] == "US").to_numpy()
           & (table["channel_group"] == "card_present").to_numpy()][0]
    day = cd[48:72]                                                          # Wednesday
    assert set(np.argsort(day)[-4:]) & {12, 13} and set(np.argsort(day)[-4:]) & {16, 17, 18}


def test_gulf_weekend_moves_to_friday_saturday(P):
    keys = pl.DataFrame([("consumer_daytime", "card_present", "SA", "Asia/Riyadh"),
                         ("consumer_daytime", "card_present", "US", "America/New_York")],
                        schema=shapes.SHAPE_KEY, orient="row")
    table, S = shapes.build_shapes(keys, P["shape_library_5A"], P["zone_shape_modifiers_5A"], PH)
    sa = S[table["legal_country_iso"].to_list().index("SA")].reshape(7, 24).sum(axis=1)
    us = S[table["legal_country_iso"].to_list().index("US")].reshape(7, 24).sum(axis=1)
    assert table.filter(pl.col("legal_country_iso") == "SA")["profile_id"].item() == "zg4"
    assert int(np.argmax(us)) == 5 and int(np.argmin(us)) == 6                 # Saturday peak, Sunday low
    assert int(np.argmax(sa)) == 4 and int(np.argmin(sa)) == 5                 # Friday peak, Saturday low


# ----------------------------------------------------------------------------------------------- S3
def test_weekly_totals_equal_configured_volume(P):
    prof = _profile(P)
    keys, S = shapes.build_shapes(prof, P["shape_library_5A"], P["zone_shape_modifiers_5A"], PH)
    base, w_eff, lift = baseline.baseline(prof, keys, S, P["demand_scale_policy_5A"], P["baseline_intensity_policy_5A"])
    w = prof["weekly_volume_expected"].to_numpy()
    assert base.shape == (prof.height, 168) and np.all(base >= 0)
    assert np.allclose(base.sum(axis=1), w_eff, rtol=1e-12, atol=0)
    plain = lift == 1.0
    assert plain.any() and np.allclose(base[plain].sum(axis=1), w[plain], rtol=1e-12, atol=0)
    assert np.all((prof["zone_role"].to_numpy() == "tail_zone") | plain)       # lift only on tail zones
    long = baseline.baseline_long(prof, base, lift)
    assert long.height == 168 * prof.height
    # no overlays: a whole week of UTC buckets carries exactly the weekly volume (no DST in this window)
    w0 = _world(P, prof, start="2026-05-04T00:00:00Z", days=14, cal=calendar.finish_calendar([]))
    lam = _utc_matrix(w0)
    assert np.allclose(lam.sum(axis=1), 2 * w_eff, rtol=1e-12)


def test_lambda_hard_limit_fails_closed(P):
    prof = _profile(P, 10).with_columns(pl.col("weekly_volume_expected") * 1e4)
    keys, S = shapes.build_shapes(prof, P["shape_library_5A"], P["zone_shape_modifiers_5A"], PH)
    with pytest.raises(EngineFailure) as e:
        baseline.baseline(prof, keys, S, P["demand_scale_policy_5A"], P["baseline_intensity_policy_5A"])
    assert e.value.code == "5A.S3.LAMBDA_HARD_LIMIT_EXCEEDED"


# ----------------------------------------------------------------------------------------------- S4 time
def test_horizon_from_config_and_invalid_grid():
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    for p, H in (("tiny", 48), ("dev", 336), ("full", 2160)):
        hz = horizon.horizon_from_config(cfg, p)
        assert hz.n_buckets == H and horizon.iso_utc(hz.start_us) == "2026-03-02T00:00:00Z"
    with pytest.raises(EngineFailure) as e:
        horizon.make_horizon("2026-03-02", 2, 7)
    assert e.value.code == "5A.S4.HORIZON_GRID_INVALID"


@pytest.mark.parametrize("start,days", [("2026-03-02T00:00:00Z", 30), ("2026-10-20T00:00:00Z", 20),
                                        ("2026-03-25T00:00:00Z", 20)])
def test_bucket_placement_matches_zoneinfo(P, start, days):
    """Each UTC bucket's local slot = zoneinfo (pinned wheel) local time of its midpoint; gap hours forward,
    fold hours split in two."""
    prof = _hand_profile(HAND)
    w = _world(P, prof, start=start, days=days, cal=calendar.finish_calendar([]))
    g, hz = w["grid"], w["hz"]
    lam = _utc_matrix(w)
    n_gap = n_fold = 0
    for r, tz in enumerate(prof["zone_representation"].to_list()):
        t = g.tzids.index(tz)
        zi = wheel_zoneinfo(tz)
        seen = {}
        for h in range(hz.n_buckets):                         # test oracle: per bucket, via stdlib zoneinfo
            mid = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=hz.start_us + h * hz.bucket_us
                                                                         + hz.bucket_us // 2)
            loc = mid.astimezone(zi)
            k = (loc.isoweekday() - 1) * 24 + loc.hour
            assert g.k[t, g.l_of_h[t, h]] == k, (tz, h)
            seen.setdefault((loc.date(), loc.hour), []).append(h)
        base = w["base"][r]
        for (d, hour), hs in seen.items():
            k = (d.isoweekday() - 1) * 24 + hour
            if len(hs) == 2:                                   # fold: the repeated hour splits
                n_fold += 1
                assert np.allclose(lam[r, hs], base[k] / 2, rtol=1e-12)
            nxt = (dt.datetime.combine(d, dt.time(hour)) + dt.timedelta(hours=1))
            if (d, hour) != max(seen) and (nxt.date(), nxt.hour) not in seen:   # the next wall hour is a gap
                n_gap += 1
                kg = (nxt.isoweekday() - 1) * 24 + nxt.hour
                after = dt.datetime.combine(d, dt.time(hour)) + dt.timedelta(hours=2)
                h2 = seen[(after.date(), after.hour)][0]
                k2 = (after.isoweekday() - 1) * 24 + after.hour
                assert math.isclose(lam[r, h2], base[kg] + base[k2], rel_tol=1e-12)
    assert n_gap + n_fold > 0                                  # every window holds a DST change


@pytest.mark.parametrize("start,days", [("2026-03-02T00:00:00Z", 30), ("2026-10-20T00:00:00Z", 20),
                                        ("2026-03-25T00:00:00Z", 20)])
def test_local_day_mass_conserved_across_dst(P, start, days):
    prof = _hand_profile(HAND)
    w = _world(P, prof, start=start, days=days)                 # generated calendar: F is not all ones
    assert (w["F"] != 1).any()
    lam, loc, g = _utc_matrix(w), _local_matrix(w), w["grid"]
    for r in range(prof.height):
        t = w["sig"].row_tz[r]
        day_of_slot = g.day[t, :g.nL[t]]
        day_of_h = day_of_slot[g.l_of_h[t]]
        for d in np.unique(day_of_slot)[1:-1]:                  # whole local days inside the horizon
            a = math.fsum(lam[r, day_of_h == d].tolist())
            b = math.fsum(loc[r, :g.nL[t]][day_of_slot == d].tolist())
            assert abs(a - b) <= 1e-9 * max(1.0, b), (prof["zone_representation"][r], d)
        assert math.isclose(lam[r].sum(), loc[r, :g.nL[t]].sum(), rel_tol=1e-12)


# ----------------------------------------------------------------------------------------------- S4 overlays
def _local_day_us(d: str) -> int:
    return (dt.date.fromisoformat(d) - dt.date(1970, 1, 1)).days * 86_400_000_000


def test_holiday_changes_exactly_its_zones_local_date(P):
    prof = _hand_profile(HAND)
    none = _world(P, prof, cal=calendar.finish_calendar([]))
    s = _local_day_us("2026-03-08")                            # the US spring-forward Sunday: 23 local hours
    cal = calendar.finish_calendar([{"event_type": "HOLIDAY", "time_basis": "local", "start_us": s,
                                     "end_us": s + 86_400_000_000, "shape_kind": "constant", "amplitude": 0.8,
                                     "ramp_in_buckets": 0, "ramp_out_buckets": 0, "scope_global": False,
                                     "country_iso": "US", "demand_class": "consumer_daytime"}])
    hol = _world(P, prof, cal=cal)
    a, b, g = _utc_matrix(none), _utc_matrix(hol), hol["grid"]
    day = dt.date(2026, 3, 8) - dt.date(1970, 1, 1)
    for r, row in enumerate(prof.iter_rows(named=True)):
        t = hol["sig"].row_tz[r]
        hit = g.day[t, g.l_of_h[t]] == day.days
        if row["legal_country_iso"] == "US" and row["demand_class"] == "consumer_daytime":
            assert hit.sum() == 23                              # local midnight to local midnight
            assert np.allclose(b[r, hit], 0.8 * a[r, hit], rtol=1e-12) and np.array_equal(b[r, ~hit], a[r, ~hit])
            local_hours = {((hol["hz"].start_us + h * 3_600_000_000) // 3_600_000_000) for h in np.flatnonzero(hit)}
            assert len(local_hours) == 23
        else:
            assert np.array_equal(a[r], b[r])                  # other countries and classes untouched
    # New York's and Los Angeles' holiday buckets are different UTC buckets (local dates)
    ny, la = g.tzids.index("America/New_York"), g.tzids.index("America/Los_Angeles")
    assert np.flatnonzero(g.day[ny, g.l_of_h[ny]] == day.days)[0] + 3 == np.flatnonzero(
        g.day[la, g.l_of_h[la]] == day.days)[0]


def test_payday_ramp_changes_exactly_its_zones(P):
    prof = _hand_profile(HAND)
    none = _world(P, prof, cal=calendar.finish_calendar([]))
    s = _local_day_us("2026-03-13")
    A, rin, rout = 1.2, 6, 24
    cal = calendar.finish_calendar([{"event_type": "PAYDAY", "time_basis": "local", "start_us": s,
                                     "end_us": s + 48 * 3_600_000_000, "shape_kind": "ramp", "amplitude": A,
                                     "ramp_in_buckets": rin, "ramp_out_buckets": rout, "scope_global": False,
                                     "country_iso": "GB", "demand_class": "consumer_daytime"}])
    pay = _world(P, prof, cal=cal)
    a, b, g = _utc_matrix(none), _utc_matrix(pay), pay["grid"]
    for r, row in enumerate(prof.iter_rows(named=True)):
        if row["legal_country_iso"] != "GB":
            assert np.array_equal(a[r], b[r])
            continue
        t = pay["sig"].row_tz[r]
        j = g.L0[t] + g.l_of_h[t] - s // 3_600_000_000
        want = np.array([ramp_factor(A, int(x), 48, rin, rout) if 0 <= x < 48 else 1.0 for x in j])
        assert np.allclose(b[r], a[r] * want, rtol=1e-12)
        assert np.isclose(want.max(), A) and (want > 1).sum() == 48


def _ev(et, amp, basis="utc", s=0, e=10, **scope):
    shape = {"OUTAGE": "constant", "STRESS": "constant", "HOLIDAY": "constant"}.get(et, "ramp")
    return {"event_type": et, "time_basis": basis, "start_us": s, "end_us": e, "shape_kind": shape,
            "amplitude": amp, "ramp_in_buckets": 0, "ramp_out_buckets": 0,
            "scope_global": not any(v is not None for v in scope.values()), **scope}


def test_overlay_precedence_masks_and_clamp(P):
    prof = _hand_profile(HAND[:4])
    hz = horizon.make_horizon("2026-05-04T00:00:00Z", 7, 60)
    h = lambda i: hz.start_us + i * 3_600_000_000                                       # noqa: E731
    d = _local_day_us("2026-05-06")
    cal = calendar.finish_calendar([
        _ev("OUTAGE", 0.05, s=h(10), e=h(12), tzid="Europe/London"),
        _ev("CAMPAIGN", 2.0, s=h(0), e=h(168), demand_class="consumer_daytime"),
        _ev("STRESS", 3.0, s=h(20), e=h(30)),
        _ev("HOLIDAY", 0.9, basis="local", s=d, e=d + 86_400_000_000, country_iso="US"),
        _ev("HOLIDAY", 0.6, basis="local", s=d, e=d + 86_400_000_000, country_iso="US", demand_class="office_hours"),
        _ev("HOLIDAY", 1.05, basis="local", s=d, e=d + 86_400_000_000, country_iso="GB"),
        _ev("PAYDAY", 1.6, basis="local", s=d, e=d + 86_400_000_000, country_iso="GB")])
    w = _world(P, prof, start="2026-05-04T00:00:00Z", days=7, cal=cal)
    g, F, sig = w["grid"], w["F"], w["sig"]

    def f(merchant, tz, hh):
        r = prof.with_row_index().filter((pl.col("merchant_id") == merchant) & (pl.col("zone_representation") == tz))
        r = int(r["index"].item())
        t = g.tzids.index(tz)
        return F[sig.row_sig[r], g.l_of_h[t, hh]]
    assert f(13, "Europe/London", 11) == pytest.approx(0.05)         # OUTAGE caps CAMPAIGN at 1
    assert f(13, "Europe/London", 25) == pytest.approx(3.0)          # STRESS caps CAMPAIGN at 1
    assert f(13, "Europe/London", 5) == pytest.approx(2.0)           # CAMPAIGN alone
    lon = g.tzids.index("Europe/London")
    hh = int(np.flatnonzero(g.day[lon, g.l_of_h[lon]] == (dt.date(2026, 5, 6) - dt.date(1970, 1, 1)).days)[3])
    assert f(13, "Europe/London", hh) == pytest.approx(2.0 * 1.6 * 1.05)          # product, no clamp
    ny = g.tzids.index("America/New_York")
    hn = int(np.flatnonzero(g.day[ny, g.l_of_h[ny]] == (dt.date(2026, 5, 6) - dt.date(1970, 1, 1)).days)[5])
    assert f(12, "America/New_York", hn) == pytest.approx(0.6)       # most specific holiday only (class+country)
    assert f(11, "America/New_York", hn) == pytest.approx(2.0 * 0.9)
    assert F.max() <= 5.0 and F.min() >= 0.0
    # clamp at 5: STRESS 3 x PAYDAY 1.6 x HOLIDAY 1.05 = 5.04
    cal2 = calendar.finish_calendar([_ev("STRESS", 3.0, s=h(0), e=h(168)),
                                     _ev("PAYDAY", 1.6, basis="local", s=d, e=d + 86_400_000_000, country_iso="GB"),
                                     _ev("HOLIDAY", 1.05, basis="local", s=d, e=d + 86_400_000_000, country_iso="GB")])
    w2 = _world(P, prof, start="2026-05-04T00:00:00Z", days=7, cal=cal2)
    assert w2["F"].max() == 5.0


def test_ramp_factor_known_values():
    assert ramp_factor(2.0, 0, 10, 3, 3) == pytest.approx(1.25)
    assert ramp_factor(2.0, 3, 10, 3, 3) == 2.0
    assert ramp_factor(2.0, 9, 10, 3, 3) == pytest.approx(1.25)
    assert ramp_factor(2.0, 1, 3, 3, 3) == pytest.approx(1.5)        # both ramps: the value closer to 1


# ----------------------------------------------------------------------------------------------- calendar
def test_calendar_has_real_holidays_and_paydays(P):
    hz = horizon.make_horizon("2026-05-18T00:00:00Z", 14, 60)
    scen = P["scenario_horizon_config_5A"]["scenarios"][0]
    cal = calendar.generate_calendar(scen, hz, ["GB", "US", "XK"], ["America/New_York", "Europe/London"],
                                     P["scenario_calendar_generator_5A"])
    calendar.validate_calendar(cal, P["scenario_overlay_policy_5A"], hz)
    hol = cal.filter(pl.col("event_type") == "HOLIDAY")
    us = hol.filter(pl.col("country_iso") == "US")["label"].unique().to_list()
    gb = hol.filter(pl.col("country_iso") == "GB")["label"].unique().to_list()
    assert any(x.startswith("2026-05-25 Memorial Day") for x in us)
    assert any(x.startswith("2026-05-25") for x in gb)              # Spring Bank Holiday
    assert set(hol["demand_class"]) == set(P["scenario_calendar_generator_5A"]["holiday"]["class_amplitudes"])
    assert cal.filter(pl.col("event_type") == "OUTAGE").height == math.ceil(14 * 0.6)
    assert cal.filter(pl.col("event_type") == "STRESS").height == 0
    pay = cal.filter(pl.col("event_type") == "PAYDAY")
    for iso in ("GB", "US"):
        days = {dt.date(1970, 1, 1) + dt.timedelta(microseconds=x) for x in pay.filter(pl.col("country_iso") == iso)["start_us"]}
        assert all(d.isoweekday() <= 5 for d in days)
    assert calendar.holidays_version() and cal.equals(
        calendar.generate_calendar(scen, hz, ["GB", "US", "XK"], ["America/New_York", "Europe/London"],
                                   P["scenario_calendar_generator_5A"]))
    stress = calendar.generate_calendar(P["scenario_horizon_config_5A"]["scenarios"][1], hz, ["GB", "US"],
                                        ["Europe/London"], P["scenario_calendar_generator_5A"])
    assert stress.filter(pl.col("event_type") == "STRESS").height >= 2
    assert calendar.calendar_sha256(stress) != calendar.calendar_sha256(cal)


def test_calendar_validation_fails_closed(P):
    hz = horizon.make_horizon("2026-05-18T00:00:00Z", 7, 60)
    bad = calendar.finish_calendar([_ev("HOLIDAY", 0.2, basis="local", s=0, e=86_400_000_000, country_iso="US")])
    with pytest.raises(EngineFailure) as e:
        calendar.validate_calendar(bad, P["scenario_overlay_policy_5A"], hz)
    assert e.value.code == "5A.S0.CALENDAR_INVALID"
    bad = calendar.finish_calendar([_ev("OUTAGE", 0.05, s=hz.start_us, e=hz.start_us + 1)])   # global outage
    with pytest.raises(EngineFailure):
        calendar.validate_calendar(bad, P["scenario_overlay_policy_5A"], hz)


# ----------------------------------------------------------------------------------------------- streaming
def test_utc_table_rows_schema_and_chunking(P):
    prof = _profile(P, 40)
    w = _world(P, prof, days=7)
    whole = _utc(w, chunk_rows=10**6)
    H = w["hz"].n_buckets
    assert whole.num_rows == prof.height * H
    assert _utc(w, chunk_rows=1).equals(whole)                 # chunking changes nothing
    blocks = project.merchant_blocks(prof["merchant_id"].to_numpy(), 3)
    mid = prof["merchant_id"].to_numpy()
    assert all(a == 0 or mid[a] != mid[a - 1] for a, _ in blocks)
    contract = yaml.safe_load((ROOT / "contracts/datasets/5A/merchant_zone_scenario_utc_5A.schema.yaml").read_text())
    assert whole.schema.names == list(contract["properties"])
    assert [f.type for f in whole.schema] == [arrow_type(p["x-arrow"]) for p in contract["properties"].values()]
    t = pl.from_arrow(whole)
    key = ["merchant_id", "zone_representation", "utc_horizon_bucket_index"]
    assert t.equals(t.sort(key)) and not t.select(key).is_duplicated().any()
    assert t.group_by("merchant_id", "zone_representation").len()["len"].unique().to_list() == [H]
    loc = pa.concat_tables(list(project.local_chunks(prof, w["base"], w["grid"], w["sig"], w["F"])))
    contract = yaml.safe_load((ROOT / "contracts/datasets/5A/merchant_zone_scenario_local_5A.schema.yaml").read_text())
    assert [f.type for f in loc.schema] == [arrow_type(p["x-arrow"]) for p in contract["properties"].values()]
    assert math.isclose(pc_sum(loc, "lambda_local_scenario"), pc_sum(whole, "lambda_utc_scenario"), rel_tol=1e-12)


def pc_sum(t: pa.Table, col: str) -> float:
    return math.fsum(t.column(col).to_numpy().tolist())


def test_two_runs_identical_bytes(P, tmp_path):
    def run(out: Path):
        prof = _profile(P, 30)
        w = _world(P, prof, days=3)
        with DatasetWriter(out, project.UTC_SCHEMA, "merchant_zone_scenario_utc_5A", None, "5A.S4",
                           row_group_rows=500, rows_per_part=1000) as wr:
            for tb in project.prefetched(project.utc_chunks(w["prof"], w["base"], w["grid"], w["sig"], w["F"], 7)):
                wr.write(tb, subdir="scenario_id=baseline_v1")
        return read_manifest(out)
    a, b = run(tmp_path / "a"), run(tmp_path / "b")
    assert a["files"] == b["files"] and len(a["files"]) > 1


def test_arrival_scale_within_a_factor_1_5_of_design(P):
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    got = scale.preset_arrivals(cfg, P)
    assert set(got) >= {"tiny", "dev", "full"}
    for name in ("tiny", "dev", "full"):
        assert abs(got[name]["log10_ratio"]) <= math.log10(1.5), (name, got[name])


def test_preset_volume_scale_is_the_calibrated_one_and_scales_volumes(P):
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg["presets"] = {k: v for k, v in cfg["presets"].items() if k in ("tiny", "dev")}
    cal = scale.calibrate_preset_scales(cfg, P)
    conf = P["demand_scale_policy_5A"]["preset_volume_scale"]
    for name, s in cal.items():
        assert abs(s / conf[name] - 1) < 0.02, (name, s, conf[name])
    a = scale.profile_for(40, P, PH, preset=None)["weekly_volume_expected"].to_numpy()
    b = scale.profile_for(40, P, PH, preset="nope")["weekly_volume_expected"].to_numpy()
    c = scale.profile_for(40, P, PH, preset="full")["weekly_volume_expected"].to_numpy()
    assert np.array_equal(a, b)                     # an unlisted preset is unscaled
    cap = P["demand_scale_policy_5A"]["realism_targets"]["max_weekly_volume_expected"]
    small = a < cap                                 # not soft-capped at scale 1, so not at s < 1 either
    assert np.allclose(c[small], a[small] * conf["full"], rtol=1e-12)


def test_scenario_manifest_from_config(P):
    from engine.seg5A import manifest
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    hz = horizon.horizon_from_config(cfg, "dev")
    scen = manifest.scenarios_to_run(cfg, P["scenario_horizon_config_5A"])
    assert [s["scenario_id"] for s in scen] == cfg["scenarios"]
    m = manifest.scenario_manifest(scen, hz, {s["scenario_id"]: ("0" * 64, 3) for s in scen},
                                   calendar.holidays_version())
    contract = yaml.safe_load((ROOT / "contracts/datasets/5A/scenario_manifest_5A.schema.yaml").read_text())
    assert [f.type for f in m.schema] == [arrow_type(p["x-arrow"]) for p in contract["properties"].values()]
    r = m.to_pylist()[0]
    assert r["n_horizon_buckets"] == 336 and r["bucket_duration_seconds"] == 3600
    assert (r["horizon_end_utc"] - r["horizon_start_utc"]).days == 14
    with pytest.raises(EngineFailure) as e:
        manifest.scenarios_to_run(dict(cfg, scenarios=["nope_v1"]), P["scenario_horizon_config_5A"])
    assert e.value.code == "5A.S0.REQUIRED_SCENARIO_MISSING"


@pytest.mark.parametrize("n", [2, 3, 5])
def test_utc_chunks_of_merchant_shards_are_the_one_job_rows_and_block_sums(P, n):
    """S4 as n merchant shards (`rows`): the shards' tables concatenate to the one-job table, and their
    block sums, in shard order, are the one job's (a block cut by a shard edge is summed once, whole)."""
    from engine.core import shards
    w = _world(P, _profile(P, 40), days=2)
    args = (w["prof"], w["base"], w["grid"], w["sig"], w["F"], 7)
    one = project.StreamStats()
    full = pa.concat_tables(list(project.utc_chunks(*args, stats=one)))
    mid = w["prof"]["merchant_id"].to_numpy()
    parts, sums, rows = [], [], 0
    for k in range(n):
        idx = np.flatnonzero(shards.merchant_mask(mid, (k, n)))
        st = project.StreamStats()
        parts += list(project.utc_chunks(*args, stats=st, rows=(int(idx[0]), int(idx[-1]) + 1)))
        sums, rows = sums + st.chunk_sums, rows + st.rows
    assert pa.concat_tables(parts).equals(full)
    assert sums == one.chunk_sums and rows == one.rows == full.num_rows
    starts = {r0 for r0, _ in project.merchant_blocks(mid.astype(np.uint64), 7)}
    assert any(int(np.flatnonzero(shards.merchant_mask(mid, (k, n)))[0]) not in starts for k in range(1, n))
