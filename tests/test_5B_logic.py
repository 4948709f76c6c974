"""5B logic on synthetic inputs shaped like the real hand-offs (engine/seg5B/synth.py): a real tz
cache over 2026-03-01..04-05, so US DST (03-08) and EU DST (03-29) fall inside the horizon."""
from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.core import rng
from engine.core.errors import EngineFailure
from engine.core.publish import DatasetWriter, read_dataset
from engine.seg5B import arrivals as A
from engine.seg5B import chain, synth
from engine.seg5B import kernels as K
from engine.seg5B import logic as L
from engine.seg5B.audit import ArrivalAudit, count_realism
from engine.seg5B.policies import load_policies

MF, PH, SEED = "a" * 64, "b" * 64, 20260302


@pytest.fixture(scope="module")
def pol():
    return load_policies("config/5B")


@pytest.fixture(scope="module")
def world():
    return synth.make_world(120, 30, 1.5e5, seed=3)


@pytest.fixture(scope="module")
def plan(world):
    return A.build_routing_plan(world.site_weights, world.alias_table, world.classification, world.settlement,
                                world.edges, world.cache)


def _run(world, pol, plan, batch_target=None, parallel=True, seed=SEED):
    tabs = []
    out = chain.run_scenario(world.lam, world.profile, world.classification, world.scenario, pol, plan,
                             L.stream_deriver(MF, PH, seed, "baseline_v1"), tabs.append, batch_target, parallel)
    return out, tabs


@pytest.fixture(scope="module")
def run(world, pol, plan):
    return _run(world, pol, plan, batch_target=20_000)


@pytest.fixture(scope="module")
def events(run):
    return pa.concat_tables(run[1])


@pytest.fixture(scope="module")
def audit(run, plan):
    out, tabs = run
    au = ArrivalAudit(out.cp, plan, out.g, out.count, out.row_c, out.row_b, sample_every=7)
    for t in tabs:
        au.update(t)
    return au.finish(out.trace.to_dict())


# ---------------------------------------------------------------- S1

def test_time_grid_is_contiguous_half_open(pol):
    grid, g = L.time_grid("2026-03-02T00:00:00Z", "2026-03-04T00:00:00Z", 3600, pol["time_grid_policy_5B"], True, False)
    s = grid["bucket_start_utc"].dt.epoch("us").to_numpy()
    e = grid["bucket_end_utc"].dt.epoch("us").to_numpy()
    assert g.H == 48 and np.all(s[1:] == e[:-1]) and np.all(e - s == g.d_us)
    assert grid["local_day_of_week"][0] == 1 and not grid["is_weekend"].any()     # Monday, Tuesday


@pytest.mark.parametrize("start,end,bucket", [("2026-03-02T00:30:00Z", "2026-03-04T00:00:00Z", 3600),
                                              ("2026-03-04T00:00:00Z", "2026-03-02T00:00:00Z", 3600),
                                              ("2026-03-02T00:00:00Z", "2026-03-04T00:00:00Z", 900)])
def test_time_grid_refuses_bad_horizon(pol, start, end, bucket):
    with pytest.raises(EngineFailure) as e:
        L.time_grid(start, end, bucket, pol["time_grid_policy_5B"], True, False)
    assert e.value.code == "5B.S1.SCENARIO_HORIZON_INVALID"


def test_grouping_one_group_per_domain_row_and_zone_groups_shared(run):
    out, _ = run
    d = out.domain
    assert d["group_id"].null_count() == 0 and d.height == d.select(L.DOMAIN).n_unique()
    # a merchant's zones in the same zone group share the group (chapter S1 step 3)
    k = d.group_by("merchant_id", "zone_group_id", "channel_group").agg(pl.col("group_id").n_unique())
    assert k["group_id"].max() == 1


def test_class_map_missing_a_class_is_named(pol):
    with pytest.raises(EngineFailure) as e:
        load_policies("config/5B", classes=list(synth.CLASSES) + ["brand_new_class"])
    assert e.value.code == "5B.S2.LGCP_CONFIG_INVALID"


# ---------------------------------------------------------------- S2 / S3

def test_latent_factor_mean_one_and_budget(run, pol):
    out, _ = run
    clip = pol["arrival_lgcp_config_5B"]["clipping"]
    assert abs(out.factors.mean() - 1) < 0.05
    assert out.factors.min() >= clip["min_factor"] and out.factors.max() <= clip["max_factor"]
    t = out.trace.to_dict()["5B.latent_vector"]
    assert t["events"] == out.factors.shape[0] and t["blocks"] == out.factors.size and t["draws"] == 2 * out.factors.size


def test_latent_ou_reproduces_recursion(pol):
    """One group against a direct Box-Muller + AR(1) evaluation of the same stream."""
    lg = pol["arrival_lgcp_config_5B"]
    derive = L.stream_deriver(MF, PH, SEED, "s")
    g = pl.DataFrame({"group_id": ["g|x"], "scenario_band": ["baseline"], "demand_class": ["online_bursty"],
                      "channel_group": ["card_present"], "virtual_band": ["physical"]})
    tab, f, _ = L.latent_factors(g, 50, lg, derive)
    s, ell = float(tab["sigma"][0]), float(tab["length_scale"][0])
    assert s == pytest.approx(0.25 * 1.6) and ell == pytest.approx(12.0)
    key, hi, lo = (int(x) for x in derive("latent_vector", pa.array(["g|x"]))[0])
    phi, z, want = math.exp(-1 / ell), 0.0, []
    for t in range(50):
        h, lo_t = rng.add_counter(np.uint64(hi), np.uint64(lo), np.uint64(t))
        x0, x1 = rng.philox2x64_10(np.uint64(h), np.uint64(lo_t), np.uint64(key))
        u1, u2 = rng.u01(np.uint64(x0)), rng.u01(np.uint64(x1))
        e = math.sqrt(-2 * math.log(u1)) * math.cos(2 * math.pi * u2)
        z = s * e if t == 0 else phi * z + s * math.sqrt(1 - phi * phi) * e
        want.append(min(max(math.exp(z - s * s / 2), 0.2), 5.0))
    np.testing.assert_allclose(f[0], want, rtol=1e-12)


def test_zero_lambda_rows_draw_nothing(run, pol):
    out, _ = run
    eps = pol["arrival_count_config_5B"]["lambda_zero_eps"]
    zero = out.lam_realised <= eps
    assert zero.any() and np.all(out.count[zero] == 0)
    assert out.trace.to_dict()["5B.bucket_count"]["events"] == int((~zero).sum())


def test_poisson_one_uniform_known_answers():
    # CDF inversion: P(0) = e^-2 = 0.1353..., P(<=1) = 0.406...
    assert K.poisson_one(2.0, 0.10, 50.0, 200000) == 0
    assert K.poisson_one(2.0, 0.20, 50.0, 200000) == 1
    assert K.poisson_one(2.0, 0.50, 50.0, 200000) == 2
    # normal approximation above 50: median -> floor(r + 0.5)
    assert K.poisson_one(100.0, 0.5, 50.0, 200000) == 100


def test_counts_nb2_overdispersed_poisson_not(pol):
    mu = np.full(40_000, 20.0)
    rc = np.repeat(np.arange(40), 1000)
    rb = np.tile(np.arange(1000), 40)
    keys = L.stream_deriver(MF, PH, SEED, "s")("bucket_count", pa.array([f"k{i}" for i in range(40)]))
    cc = dict(pol["arrival_count_config_5B"])
    n_nb, _, _ = L.bucket_counts(rc, rb, mu, np.full(40, 30.0), keys, cc)
    cc["count_law"] = "poisson"
    n_po, _, _ = L.bucket_counts(rc, rb, mu, np.full(40, 30.0), keys, cc)
    assert abs(n_po.mean() - 20) < 0.15 and abs(n_po.var() / 20 - 1) < 0.05
    assert abs(n_nb.mean() - 20) < 0.2 and n_nb.var() == pytest.approx(20 + 400 / 30, rel=0.06)


# ---------------------------------------------------------------- S4 invariants

def test_conservation_s3_to_s4_exact(run, events, audit):
    out, _ = run
    assert events.num_rows == int(out.count.sum()) == out.s4["arrivals"]
    c = audit["conservation"]
    assert c["rows_mismatched"] == 0 and c["abs_diff"] == 0 and c["total_seen"] == c["total_expected"]
    assert audit["failed"] == []


def test_every_ts_in_its_bucket_and_local_time_exact_across_dst(events, audit, world):
    assert audit["counts"]["ts_outside_bucket"] == 0 and audit["counts"]["civil_time_mismatch"] == 0
    z = audit["zoneinfo"]
    assert z["sample"] > 1000 and z["mismatch"] == 0 and z["one_hour"] == 0
    # the horizon really crosses DST: New York arrivals before and after 2026-03-08 07:00Z differ by 1 h offset
    ny = events.filter(pa.compute.equal(events["tzid_primary"].cast(pa.string()), "America/New_York"))
    off = (ny["ts_local_primary"].cast(pa.int64()).to_numpy() - ny["ts_utc"].cast(pa.int64()).to_numpy()) // 3_600_000_000
    assert set(off.tolist()) == {-5, -4}


def test_local_times_match_zoneinfo_everywhere_for_a_full_tz(events):
    """Every Lord Howe (30-min DST) arrival against the tzdata wheel, not a sample."""
    from engine.core.tzcache import wheel_zoneinfo
    zi = wheel_zoneinfo("Australia/Lord_Howe")
    lh = events.filter(pa.compute.equal(events["tzid_primary"].cast(pa.string()), "Australia/Lord_Howe"))
    assert lh.num_rows > 0
    for u, loc in zip(lh["ts_utc"].to_pylist(), lh["ts_local_primary"].to_pylist()):
        assert u.astimezone(zi).replace(tzinfo=None) == loc


def test_routing_membership_and_fallback_counted(audit, run):
    out, _ = run
    v = audit["counts"]
    for k in ("site_not_merchants", "site_outside_zone", "edge_not_merchants", "virtual_on_non_virtual",
              "physical_on_virtual_only", "flag_inconsistent", "tzid_primary_wrong"):
        assert v[k] == 0, k
    assert v["fallback_arrivals"] > 0 and v["fallback_arrivals"] == out.s4["fallback_arrivals"]
    assert 0 < v["virtual_arrivals"] == out.s4["virtual"]


def test_flags_and_nulls(events):
    virt = events["is_virtual"].to_numpy(zero_copy_only=False)
    for col, null_when in (("site_id", virt), ("edge_id", ~virt), ("tzid_operational", ~virt),
                           ("tzid_settlement", ~virt), ("ts_local_settlement", ~virt)):
        assert np.array_equal(np.asarray(events[col].is_null()), null_when), col


def test_arrival_seq_is_1_to_n_and_chronological_per_merchant(events, audit):
    assert audit["pk_missing"] == 0 and audit["counts"]["seq_duplicate"] == 0
    df = pl.from_arrow(events.select(["merchant_id", "arrival_seq", "ts_utc"])).sort("merchant_id", "arrival_seq")
    chk = df.group_by("merchant_id").agg(pl.len(), pl.col("arrival_seq").max().alias("mx"),
                                         pl.col("ts_utc").is_sorted().alias("sorted"))
    assert (chk["len"] == chk["mx"]).all() and chk["sorted"].all()


def test_rng_draws_equal_budget(run, audit, plan, events):
    out, _ = run
    t = out.trace.to_dict()
    assert audit["rng_mismatch"] == []
    assert t["5B.arrival_time_jitter"]["blocks"] == t["5B.arrival_time_jitter"]["draws"] == out.s4["arrivals"]
    m = plan.merchant_index(events["merchant_id"].to_numpy())
    site = int(np.count_nonzero(plan.m_mode[m] != K.MODE_VIRTUAL_ONLY))   # every non-VIRTUAL_ONLY arrival
    assert t["5B.arrival_site_pick"]["blocks"] == site and t["5B.arrival_site_pick"]["draws"] == 2 * site
    assert t["5B.arrival_edge_pick"]["blocks"] == t["5B.arrival_edge_pick"]["draws"] == out.s4["virtual"]


def test_hybrid_share_near_policy(run, events, plan):
    m = plan.merchant_index(events["merchant_id"].to_numpy())
    hyb = plan.m_mode[m] == K.MODE_HYBRID
    share = events["is_virtual"].to_numpy(zero_copy_only=False)[hyb].mean()
    assert abs(share - 0.35) < 4 * math.sqrt(0.35 * 0.65 / hyb.sum())


# ---------------------------------------------------------------- determinism

def test_batch_size_and_threads_do_not_change_rows(world, pol, plan, events):
    _, tabs = _run(world, pol, plan, batch_target=3_000, parallel=False)
    other = pa.concat_tables(tabs)
    assert other.num_rows == events.num_rows
    assert other.equals(events)


def test_identical_bytes_through_the_writer(tmp_path, world, pol, plan, run):
    _, tabs = run
    schema = A.arrow_schema("arrival_events_5B")
    paths = []
    for i, bt in enumerate((7_000, 50_000)):
        target = tmp_path / f"ev{i}"
        with DatasetWriter(target, schema, "arrival_events_5B", None, "5B.S4", row_group_rows=10_000) as w:
            for t in _run(world, pol, plan, batch_target=bt)[1]:
                w.write(t, subdir="scenario_id=baseline_v1")
        paths.append(target)
    a = sorted(p.read_bytes() for p in paths[0].rglob("*.parquet"))
    b = sorted(p.read_bytes() for p in paths[1].rglob("*.parquet"))
    assert a == b and len(a) >= 1
    back = read_dataset(paths[0], "5B.S4")
    assert back.num_rows == sum(t.num_rows for t in tabs)


def test_other_seed_other_rows(world, pol, plan, events):
    _, tabs = _run(world, pol, plan, seed=SEED + 1)
    assert not pa.concat_tables(tabs).equals(events)


# ---------------------------------------------------------------- named failures and validators that fail

def test_physical_merchant_without_sites_is_named(world, pol, plan):
    sw = world.site_weights.filter(pl.col("merchant_id") != world.classification.filter(
        pl.col("virtual_mode") == "NON_VIRTUAL")["merchant_id"][0])
    m = world.classification.filter(pl.col("virtual_mode") == "NON_VIRTUAL")["merchant_id"][0]
    at = world.alias_table.filter(pl.col("merchant_id") != m)
    p2 = A.build_routing_plan(sw, at, world.classification, world.settlement, world.edges, world.cache)
    with pytest.raises(EngineFailure) as e:
        _run(world, pol, p2)
    assert e.value.code == "5B.S4.SITE_RESOLUTION_FAILED"


def test_tz_missing_from_cache_is_named(world):
    from engine.core.civil_time import flatten_cache
    from engine.core.tzcache import build_tz_cache
    small = flatten_cache(build_tz_cache(["Europe/London"], "2026-03-01", "2026-04-05")[0])
    with pytest.raises(EngineFailure) as e:
        A.build_routing_plan(world.site_weights, world.alias_table, world.classification, world.settlement,
                             world.edges, small)
    assert e.value.code == "5B.S4.DST_MAPPING_FAILED"


def test_audit_catches_tampered_events(run, plan, events):
    out, _ = run
    ts = events["ts_utc"].cast(pa.int64()).to_numpy().copy()
    ts[5] += 3_600_000_000                                           # one arrival moved by an hour
    bad = events.set_column(2, "ts_utc", pa.array(ts).cast(pa.timestamp("us", "UTC")))
    bad = bad.slice(0, bad.num_rows - 1)                             # and one dropped
    au = ArrivalAudit(out.cp, plan, out.g, out.count, out.row_c, out.row_b)
    au.update(bad)
    r = au.finish(out.trace.to_dict())
    assert {"ts_outside_bucket", "civil_time_mismatch", "count_conservation", "pk_missing",
            "rng_accounting"} <= set(r["failed"])


def test_count_realism_figures(run, pol):
    out, _ = run
    r = count_realism(out.lam_realised, out.count, out.factors, pol)
    assert abs(r["lgcp_mean_factor"] - 1) <= pol["validation_policy_5B"]["lgcp_mean_factor_tol"]
    assert r["nonzero_fraction"] >= pol["validation_policy_5B"]["min_nonzero_bucket_fraction"]


def test_row_counter_offsets_and_wrap():
    h, l, w = K.row_counter(np.uint64(0), np.uint64(2**64 - 1), 1, 2)
    assert (int(h), int(l), w) == (1, (1 << 32) + 1, False)
    _, _, w = K.row_counter(np.uint64(2**64 - 1), np.uint64(2**64 - 1), 0, 1)
    assert w


def test_time_grid_dow_epoch():
    grid, _ = L.time_grid(dt.datetime(2026, 3, 7, tzinfo=dt.UTC), dt.datetime(2026, 3, 9, tzinfo=dt.UTC), 3600,
                          {"bucket_duration_seconds": 3600, "min_horizon_days": 1, "max_horizon_days": 120,
                           "max_buckets_per_scenario": 5000, "weekend_days": [6, 7]}, False, True)
    assert grid["local_day_of_week"].unique().sort().to_list() == [6, 7] and grid["is_weekend"].all()


@given(st.lists(st.tuples(st.integers(0, 5), st.integers(1, 4), st.integers(1, 9)), min_size=1, max_size=40),
       st.lists(st.integers(1, 30), min_size=1, max_size=8), st.integers(1, 40))
@settings(max_examples=150, deadline=None)
def test_streamed_chunks_regroup_into_whole_merchant_batches(rows, cuts, target):
    """S3 rows arriving in arbitrary chunks (row groups) come out as batches of whole merchants, all rows
    once, in order; batch boundaries never depend on where the chunks were cut beyond merchant ends."""
    # domain rows c non-decreasing (merchant = c // 3), buckets strictly increasing within a c
    c_m = np.arange(250) // 3
    c = np.cumsum([r[0] for r in rows])
    b = np.cumsum([r[1] for r in rows])
    n = np.array([r[2] for r in rows], np.int64)
    full = {"c": c.astype(np.int64), "b": b.astype(np.int64), "n": n, "lam": n.astype(float)}
    edges = sorted({min(x, len(rows)) for x in np.cumsum(cuts)} | {0, len(rows)})
    chunks = [{k: v[a:z] for k, v in full.items()} for a, z in zip(edges[:-1], edges[1:])]
    out = list(A.stream_batches(chunks, c_m, target))
    for k in full:
        assert np.array_equal(np.concatenate([o[k] for o in out]), full[k])
    ends = [c_m[o["c"][-1]] for o in out[:-1]]
    starts = [c_m[o["c"][0]] for o in out[1:]]
    assert all(e != s for e, s in zip(ends, starts))                     # no merchant split over batches


def test_streamed_rows_out_of_order_across_chunks_are_named():
    a = {"c": np.array([0, 1]), "b": np.array([0, 5]), "n": np.array([1, 1]), "lam": np.ones(2)}
    z = {"c": np.array([1]), "b": np.array([5]), "n": np.array([1]), "lam": np.ones(1)}   # repeats (1, 5)
    with pytest.raises(EngineFailure, match="BUCKET_COUNT_MISMATCH"):
        list(A.stream_batches([a, z], np.zeros(2, np.int64), 10))
