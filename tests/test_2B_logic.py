"""2B logic: site weights + quantisation (S1), day effects (S3), group weights (S4), router (S5).

Alias tables come from a pure-Python stand-in of the chapter's integer Vose build (the engine's
one implementation is engine.core.alias, tested with it); the router's decode is checked against a
pure-Python decode of the same law.
"""
from __future__ import annotations

import math
import shutil
import statistics

import numpy as np
import polars as pl
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as hst

from engine.core import rng
from engine.core.context import ROOT
from engine.core.errors import EngineFailure
from engine.seg2B import kernels, logic
from engine.seg2B.policies import BUCKETS, PROFILES, horizon_days, load_policies

MF, PH, SEED = "f" * 64, "a" * 64, 20260302
G24 = 1 << 24
TZS = np.array(["America/Chicago", "America/New_York", "Asia/Tokyo", "Europe/Paris"])


@pytest.fixture(scope="module")
def docs():
    return load_policies(ROOT / "config" / "2B")


@pytest.fixture(scope="module")
def derive():
    return logic.stream_deriver(MF, PH, SEED)


def synthetic_sites(n_merchants: int, seed: int = 5) -> pl.DataFrame:
    """Merchants with 1..~20 sites (geometric), each site in one of four zones."""
    r = np.random.default_rng(seed)
    k = np.minimum(r.geometric(0.3, n_merchants), 25)
    mid = np.repeat(np.arange(1, n_merchants + 1, dtype=np.uint64) * 7919, k)
    order = (np.arange(len(mid)) - np.repeat(np.cumsum(k) - k, k) + 1).astype(np.int32)
    return pl.DataFrame({"merchant_id": mid, "legal_country_iso": "US", "site_order": order,
                         "tzid": TZS[r.integers(0, 4, len(mid))]})


@pytest.fixture(scope="module")
def world(docs, derive):
    sites = synthetic_sites(1500)
    sw, c1, t1 = logic.site_weights(sites, docs["site_weights"], derive)
    days = np.datetime64("2026-03-02") + np.arange(28)
    de, c3, t3 = logic.day_effects(sw, docs["day_effects"], days, MF, derive)
    gw, _ = logic.group_weights(sw, de, docs["group_mix"])
    return {"sites": sites, "sw": sw, "de": de, "gw": gw, "c1": c1, "c3": c3, "t1": t1.to_dict(),
            "t3": t3.to_dict(), "days": days}


# ---------------------------------------------------------------- policies

@pytest.mark.parametrize("name,edit", [
    ("site_weights", lambda d: d["profile_mix"]["mid"].update(hub_spoke=0.5)),          # sums to 1.08
    ("site_weights", lambda d: d.update(soft_cap_keep=float("nan"))),
    ("site_weights", lambda d: d["size_buckets"].update(mid=[5, 8])),                   # gap at K = 4
    ("site_weights", lambda d: d.update(bogus=True)),
    ("day_effects", lambda d: d.update(sigma_bounds={"min": 0.2, "max": 0.1})),
    ("day_effects", lambda d: d["sigma_base_by_bucket"].update(small=float("inf"))),
    ("group_mix", lambda d: d.update(max_blend=1.5)),
    ("routing", lambda d: d["families"].update(group="cdn_edge_pick")),
])
def test_malformed_policy_is_named(tmp_path, name, edit):
    cfg = tmp_path / "2B"
    shutil.copytree(ROOT / "config" / "2B", cfg)
    doc = yaml.safe_load((cfg / f"{name}.yaml").read_text())
    edit(doc)
    (cfg / f"{name}.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(EngineFailure) as e:
        load_policies(cfg)
    assert e.value.code == "2B.S0.INPUT_INVALID"


def test_horizon_days_follow_the_preset():
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    for preset in cfg["presets"]:
        d = horizon_days({**cfg, "preset": preset})
        assert len(d) == cfg["presets"][preset]["horizon_days"]
        assert str(d[0]) == cfg["world"]["horizon_start_utc"][:10]


# ---------------------------------------------------------------- S1

def test_m_q_sums_to_grid_and_tracks_p_weight(world):
    sw = world["sw"]
    per = sw.group_by("merchant_id").agg(pl.col("m_q").cast(pl.Int64).sum().alias("m"), pl.col("p_weight").sum(),
                                         pl.len().alias("k"))
    assert (per["m"] == G24).all()
    assert ((per["p_weight"] - 1).abs() <= 1e-12).all()
    err = (sw["m_q"].cast(pl.Float64) / G24 - sw["p_weight"]).abs()
    assert (err < 1.0 / G24).all()                   # floor + at most one unit per site
    assert sw["m_q"].dtype == pl.UInt32 and (sw["p_weight"].is_between(0, 1)).all()


@settings(max_examples=60, deadline=None)
@given(hst.lists(hst.lists(hst.floats(1e-6, 1.0), min_size=1, max_size=40), min_size=1, max_size=20))
def test_quantise_is_exact_for_any_shares(groups):
    p = np.concatenate([np.asarray(g) / math.fsum(g) for g in groups])
    off = np.r_[0, np.cumsum([len(g) for g in groups])].astype(np.int64)
    m = logic.quantise(p, off, 24, 9)
    assert (np.add.reduceat(m, off[:-1]) == G24).all()
    assert (np.abs(m / G24 - p) < len(p) / G24).all() and (np.abs(m / G24 - p) <= 1.0 / G24 + 1e-15).all()


def test_quantise_ties_go_to_key_order():
    # three equal shares of 2^24: residues tie, the one spare unit goes to the first site
    m = logic.quantise(np.full(3, 1 / 3), np.array([0, 3]), 24, 9)
    assert m.tolist() == [G24 // 3 + 1, G24 // 3, G24 // 3]


def test_single_site_merchants_take_no_draws(world):
    sw, t = world["sw"], world["t1"]["2B.site_weight_profile"]
    k = sw.group_by("merchant_id").len()["len"].to_numpy()
    one = sw.filter(pl.col("merchant_id").is_in(sw.group_by("merchant_id").len().filter(pl.col("len") == 1)
                                                ["merchant_id"].implode()))
    assert (one["m_q"] == G24).all() and (one["profile"] == "single").all()
    assert t["events"] == int((k >= 2).sum())
    assert t["draws"] == int((1 + k[k >= 2]).sum())
    assert t["blocks"] == int(((k[k >= 2] + 2) // 2).sum())


def _reference_weights(mid: int, k: int, pol: dict) -> tuple[str, np.ndarray]:
    """The chapter's S1 steps 1-6 in plain Python on the same Philox stream."""
    key, hi, lo = rng.derive_stream("2B.site_weight_profile", MF, PH, SEED, "", str(mid))
    u = []
    for b in range((k + 2) // 2):
        h, l = rng.add_counter(np.uint64(hi), np.uint64(lo), np.uint64(b))
        x0, x1 = rng.philox2x64_10(np.uint64(h), np.uint64(l), np.uint64(key))
        u += [rng.u01(np.uint64(x0)), rng.u01(np.uint64(x1))]
    bucket = "small" if k <= 3 else ("mid" if k <= 8 else "large")
    acc, prof = 0.0, PROFILES[-1]
    for q in PROFILES:
        acc += pol["profile_mix"][bucket][q]
        if u[0] < acc:
            prof = q
            break
    a = pol["concentration_alpha"][bucket][prof]
    w = np.array([(-math.log(x)) ** a for x in u[1:1 + k]])
    p = w / w.sum()
    j = int(np.argmax(p))
    c = pol["top1_soft_cap"][bucket]
    if p[j] > c:
        pj = c + pol["soft_cap_keep"] * (p[j] - c)
        p[np.arange(k) != j] *= (1 - pj) / (1 - p[j])
        p[j] = pj
    s = pol["min_secondary_mass"][bucket]
    if 1 - p[j] < s:
        rest = p.sum() - p[j]
        p[np.arange(k) != j] *= s / rest
        p[j] = 1 - s
    return prof, p / p.sum()


def test_site_weights_match_a_plain_python_reading_of_the_chapter(world, docs):
    sw = world["sw"]
    ks = sw.group_by("merchant_id").len().sort("merchant_id")
    picks = pl.concat([ks.filter(pl.col("len") == k).head(2) for k in (2, 3, 5, 9, 14)])
    for mid, k in picks.iter_rows():
        prof, p = _reference_weights(mid, k, docs["site_weights"])
        got = sw.filter(pl.col("merchant_id") == mid)
        assert got["profile"][0] == prof
        np.testing.assert_allclose(got["p_weight"].to_numpy(), p, rtol=0, atol=1e-14)


def test_profile_caps_and_secondary_mass_hold(world, docs):
    pol = docs["site_weights"]
    top = world["sw"].group_by("merchant_id").agg(pl.col("p_weight").max(), pl.len().alias("k"),
                                                  pl.col("size_bucket").first()).filter(pl.col("k") >= 2)
    for b in BUCKETS:
        t = top.filter(pl.col("size_bucket") == b)["p_weight"]
        c, keep, s = pol["top1_soft_cap"][b], pol["soft_cap_keep"], pol["min_secondary_mass"][b]
        assert (t <= c + keep * (1 - c) + 1e-12).all() and (t <= 1 - s + 1e-12).all()


# ---------------------------------------------------------------- S3

def test_ndtri_matches_the_stdlib_inverse_normal():
    u = np.r_[np.linspace(1e-12, 1 - 1e-12, 2001), 1e-300, 2.0 ** -53, 1 - 2.0 ** -53, 0.025, 0.975]
    ref = np.array([statistics.NormalDist().inv_cdf(x) for x in u])
    got = np.array([kernels.ndtri(x) for x in u])
    np.testing.assert_allclose(got, ref, rtol=1e-13, atol=1e-14)


def test_log_normal_mean_is_one_by_construction():
    # E[exp(-σ²/2 + σZ)] = 1 for every σ (Gauss-Hermite, 60 nodes, exact to rounding)
    x, w = np.polynomial.hermite_e.hermegauss(60)
    for s in (0.06, 0.1, 0.16, 0.5):
        assert (w * np.exp(-s * s / 2 + s * x)).sum() / math.sqrt(2 * math.pi) == pytest.approx(1, abs=1e-12)


def test_day_effects_grid_counters_and_budget(world):
    de, sw, days = world["de"], world["sw"], world["days"]
    groups = sw.select("merchant_id", "tz_group_id").unique()
    assert de.height == groups.height * len(days) == world["c3"]["rows"]
    assert de.select(pl.struct("merchant_id", "utc_day", "tz_group_id").is_unique().all()).item()
    assert de.equals(de.sort("merchant_id", "utc_day", "tz_group_id"))
    assert (de["gamma"] > 0).all() and de["gamma"].is_finite().all()
    t = world["t3"]["2B.day_effect_gamma"]
    assert t["draws"] == t["blocks"] == de.height and t["events"] == sw["merchant_id"].n_unique()
    # counters: base of the merchant's stream + rank of the row, one block per row, never reused
    m = de["merchant_id"].to_numpy()
    start = np.r_[True, m[1:] != m[:-1]]
    first = np.maximum.accumulate(np.where(start, np.arange(len(m)), 0))
    hi, lo = de["rng_counter_hi"].to_numpy(), de["rng_counter_lo"].to_numpy()
    rank = np.arange(len(m)) - first
    assert ((lo - lo[first]) == rank.astype(np.uint64)).all()               # uint64 wrap = carry
    assert (hi == hi[first] + (lo < lo[first]).astype(np.uint64)).all()
    for i in np.flatnonzero(start)[:5]:
        _, h0, l0 = rng.derive_stream("2B.day_effect_gamma", MF, PH, SEED, "", str(m[i]))
        assert (int(hi[i]), int(lo[i])) == (h0, l0)


def test_gamma_mean_within_corridor_per_merchant_group(docs, derive):
    sw, _, _ = logic.site_weights(synthetic_sites(40, seed=9), docs["site_weights"], derive)
    days = np.datetime64("2024-01-01") + np.arange(2000)
    de, counts, _ = logic.day_effects(sw, docs["day_effects"], days, MF, derive)
    per = de.group_by("merchant_id", "tz_group_id").agg(pl.col("gamma").mean(), pl.col("log_gamma").std())
    assert per["gamma"].is_between(0.985, 1.015).all(), per.sort("gamma")
    assert per["log_gamma"].is_between(0.06, 0.17).all()
    assert de["gamma"].mean() == pytest.approx(1.0, abs=0.003)
    assert counts["clipped_rows"] / de.height < 0.005


# ---------------------------------------------------------------- S4

def test_group_weights_normalise_and_respect_the_regulariser(world, docs):
    gw, pol = world["gw"], docs["group_mix"]
    s = gw.group_by("merchant_id", "utc_day").agg(pl.col("p_group").sum(), pl.len().alias("g"))
    assert ((s["p_group"] - 1).abs() <= 1e-12).all()
    single = gw.join(s.filter(pl.col("g") == 1).select("merchant_id", "utc_day"), on=["merchant_id", "utc_day"])
    assert (single["p_group"] == 1.0).all()
    np.testing.assert_allclose(gw["p_group"], gw["mass_raw"] / gw["denom_raw"], rtol=0, atol=0)
    base = gw.group_by("merchant_id", "tz_group_id").agg(pl.col("base_share").first(),
                                                        pl.col("base_share_reg").first())
    m = base.group_by("merchant_id").agg(pl.col("base_share_reg").max().alias("mx"), pl.len().alias("g"),
                                         (-(pl.col("base_share_reg") * pl.col("base_share_reg").log()).sum()).alias("h"),
                                         (pl.col("base_share") != pl.col("base_share_reg")).any().alias("blended"))
    multi = m.filter(pl.col("g") >= 2).with_columns((pl.col("h") / pl.col("g").cast(pl.Float64).log()).alias("hn"))
    ok = (multi["mx"] <= pol["max_p_group_soft_cap"] + 1e-9) & (multi["hn"] >= pol["entropy_floor"] - 1e-9)
    # every merchant meets both targets, or the targets were unattainable and it got the full blend
    lb = pol["max_blend"]
    full = base.join(multi.filter(~ok).select("merchant_id", "g"), on="merchant_id").with_columns(
        ((1 - lb) * pl.col("base_share") + lb / pl.col("g")).alias("want"))
    assert ((full["base_share_reg"] - full["want"]).abs() < 1e-15).all()
    assert ok.mean() > 0.9 and multi["blended"].any()
    # rank order is preserved by blending toward uniform
    r = base.with_columns(pl.col("base_share").rank("ordinal").over("merchant_id").alias("r0"),
                          pl.col("base_share_reg").rank("ordinal").over("merchant_id").alias("r1"))
    assert (r["r0"] == r["r1"]).all()


def test_regulariser_takes_the_smallest_blend():
    base = np.array([0.8, 0.2, 0.5, 0.3, 0.2, 0.95, 0.05])
    goff = np.array([0, 2, 5, 7])
    reg, lam = kernels.regularise(base, goff, True, 2, 0.68, 0.62, 0.52, 40)
    assert lam[0] == pytest.approx(0.4, abs=1e-9)    # 0.8 - 0.3 λ <= 0.68
    assert lam[1] == 0.0                              # already meets both targets
    assert lam[2] == 0.52                             # unattainable (needs λ = 0.6): full blend
    assert kernels._blend_ok(base, 0, 2, lam[0], 0.68, 0.62)
    assert not kernels._blend_ok(base, 0, 2, lam[0] - 1e-9, 0.68, 0.62)
    np.testing.assert_allclose(reg[:2], [0.68, 0.32], atol=1e-9)


def test_group_weights_refuse_a_broken_grid(world, docs):
    with pytest.raises(EngineFailure) as e:
        logic.group_weights(world["sw"], world["de"].slice(1), docs["group_mix"])
    assert e.value.code == "2B.S4.JOIN_KEY_MISMATCH"


# ---------------------------------------------------------------- S2 stand-in and S5 router

def vose_standin(m_q: np.ndarray, off: np.ndarray):
    """Pure-Python integer Vose per chapter 2B.S2 (queues in key order, equality to large), Q0.32."""
    prob_q = np.zeros(len(m_q), np.uint32)
    alias = np.zeros(len(m_q), np.uint32)
    for s in range(len(off) - 1):
        lo, hi = int(off[s]), int(off[s + 1])
        k = hi - lo
        t = [k * int(x) for x in m_q[lo:hi]]
        small = [i for i in range(k) if t[i] < G24]
        large = [i for i in range(k) if t[i] >= G24]
        prob, al = [G24] * k, list(range(k))
        while small and large:
            a, b = small.pop(0), large.pop(0)
            prob[a], al[a] = t[a], b
            t[b] -= G24 - t[a]
            (small if t[b] < G24 else large).append(b)
        prob_q[lo:hi] = [min(p * (1 << 32) // G24, (1 << 32) - 1) for p in prob]
        alias[lo:hi] = al
    return prob_q, alias


def decode_py(u: float, prob_q, alias) -> int:
    k = len(prob_q)
    y = u * k
    j = min(int(y), k - 1)
    v = int((y - j) * 2.0 ** 32)
    return j if v < int(prob_q[j]) else int(alias[j])


@pytest.fixture(scope="module")
def routed(world, derive):
    at = logic.alias_slices(world["sw"], 24, build_alias=vose_standin)
    plan = logic.router_plan(world["gw"], at, derive)
    return at, plan


def test_alias_slices_requantise_each_group(world, routed):
    at, _ = routed
    s = at.group_by("merchant_id", "tz_group_id").agg(pl.col("m_slice").cast(pl.Int64).sum(), pl.len())
    assert (s["m_slice"] == G24).all()
    assert at.height == world["sw"].height
    assert (at.group_by("merchant_id", "tz_group_id").agg((pl.col("slot") == pl.int_range(pl.len())).all())
            ["slot"]).all()


def test_router_decode_matches_plain_python(routed):
    _, plan = routed
    r = np.random.default_rng(1)
    for s in r.integers(0, len(plan.slice_off) - 1, 50):
        lo, hi = plan.slice_off[s], plan.slice_off[s + 1]
        for u in r.random(40):
            assert kernels.alias_decode(u, lo, hi - lo, plan.prob_q, plan.alias) == \
                decode_py(u, plan.prob_q[lo:hi], plan.alias[lo:hi])


def _chi2_p(x: float, df: int) -> float:
    """Upper tail of chi-square by Wilson-Hilferty (scipy is not a dependency)."""
    z = ((x / df) ** (1 / 3) - (1 - 2 / (9 * df))) / math.sqrt(2 / (9 * df))
    return 1 - statistics.NormalDist().cdf(z)


def _site_share_pvalues(world, at, plan):
    routes = logic.audit_routes(plan, arrivals_per_merchant_day=150, max_merchants=300, days=28)
    assert routes.height == 300 * 28 * 150
    sh = logic.site_shares(routes, world["gw"], at, 24)
    n = sh.group_by("merchant_id").agg(pl.col("count").sum().alias("n"))
    sh = sh.join(n, on="merchant_id").with_columns((pl.col("expected_share") * pl.col("n")).alias("e"))
    assert ((sh.group_by("merchant_id").agg(pl.col("expected_share").sum())["expected_share"] - 1).abs() < 1e-9).all()
    x = float((((sh["count"] - sh["e"]) ** 2) / sh["e"]).sum())
    p_all = _chi2_p(x, sh.height - n.height)
    # single-group merchants: the long-run share is m_q/2^24, i.e. p_weight to within 1/2^24
    one = world["sw"].group_by("merchant_id").agg(pl.col("tz_group_id").n_unique().alias("g"), pl.len().alias("k")) \
        .filter((pl.col("g") == 1) & (pl.col("k") >= 2))["merchant_id"]
    s1 = sh.filter(pl.col("merchant_id").is_in(one.implode())).join(
        world["sw"].select(logic.KEY + ["p_weight"]), on=logic.KEY)
    assert s1.height > 20
    assert ((s1["expected_share"] - s1["p_weight"]).abs() < 1 / G24).all()
    x1 = float((((s1["count"] - s1["p_weight"] * s1["n"]) ** 2) / (s1["p_weight"] * s1["n"])).sum())
    return p_all, _chi2_p(x1, s1.height - s1["merchant_id"].n_unique())


def test_long_run_site_shares_match_within_sampling_error(world, routed):
    """Chi-square of routed site counts (300 merchants x 28 days x 150 arrivals) against the expected
    shares mean_d p_group x m_slice/2^24, and against p_weight for single-group merchants.

    Five routing seeds, because one fixed realisation can sit in the tail: with the default seed the
    pooled statistic lands at p ~ 1e-4 (its per-merchant uniform means happen to be 2.9 sd
    overdispersed; 46 other seeds examined were unremarkable). A biased router fails every seed."""
    at, plan = routed
    ps = [_site_share_pvalues(world, at, plan)]
    for k in range(1, 5):
        ps.append(_site_share_pvalues(world, at, logic.router_plan(world["gw"], at,
                                                                   logic.stream_deriver(MF, PH, SEED + k))))
    p = np.array(ps)
    print("site-share p-values [all, single-group] per seed:", p.round(4).tolist())
    assert (p > 1e-5).all() and (np.median(p, axis=0) > 0.05).all(), p


def test_routing_is_deterministic_chunkable_and_coherent(world, routed, derive):
    at, plan = routed
    gw = world["gw"]
    md = gw.select("merchant_id", "utc_day").unique().sort("merchant_id", "utc_day").head(400)
    arr = md.select(pl.all().repeat_by(25).explode()).with_columns(
        (pl.int_range(pl.len()).over("merchant_id", "utc_day") * 3 + 1).cast(pl.UInt64).alias("seq"))
    a, tr = logic.route_arrivals(plan, arr["merchant_id"], arr["utc_day"], arr["seq"])
    b, _ = logic.route_arrivals(logic.router_plan(gw, at, derive), arr["merchant_id"], arr["utc_day"], arr["seq"])
    assert a.equals(b)
    perm = np.random.default_rng(2).permutation(arr.height)
    half = arr.height // 2
    parts = [logic.route_arrivals(plan, arr[idx]["merchant_id"], arr[idx]["utc_day"], arr[idx]["seq"])[0]
             for idx in (np.sort(perm[:half]), np.sort(perm[half:]))]
    merged = pl.concat([p.with_columns(pl.Series("_i", idx)) for p, idx in
                        zip(parts, (np.sort(perm[:half]), np.sort(perm[half:])))]).sort("_i").drop("_i")
    assert merged.equals(a)                      # two chunks, routed apart, give the same answers
    t = tr.to_dict()
    assert t["2B.alias_pick_group"]["draws"] == t["2B.alias_pick_site"]["blocks"] == arr.height
    # the routed site lies in the picked group: the library checks it; check the columns too
    sites = world["sw"].select(logic.KEY + ["tz_group_id"])
    j = pl.concat([arr, a], how="horizontal").join(sites, on=logic.KEY, suffix="_site")
    assert j.height == arr.height and (j["tz_group_id"] == j["tz_group_id_site"]).all()
    with pytest.raises(EngineFailure) as e:
        logic.route_arrivals(plan, [1], [np.datetime64("2026-03-02")], [0])
    assert e.value.code == "2B.S5.ALIAS_INDEX_MISMATCH"


def test_segment_2B_logic_is_deterministic(world, docs, derive):
    sw, _, _ = logic.site_weights(world["sites"].reverse(), docs["site_weights"], derive)
    de, _, _ = logic.day_effects(sw, docs["day_effects"], world["days"], MF, derive)
    gw, _ = logic.group_weights(sw, de, docs["group_mix"])
    assert sw.equals(world["sw"]) and de.equals(world["de"]) and gw.equals(world["gw"])
    other = logic.stream_deriver(MF, PH, SEED + 1)
    sw2, _, _ = logic.site_weights(world["sites"], docs["site_weights"], other)
    assert not sw2["p_weight"].equals(sw["p_weight"])
