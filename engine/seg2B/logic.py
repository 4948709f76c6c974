"""2B logic: Polars frames in, frames out, around the numba kernels (chapter 2A2B §3 2B.S1-S5).

Streams come from a `derive(family_name, domain_keys) -> (n, 3) uint64` callable (see
`stream_deriver`), so these functions know nothing of run contexts or files. Each RNG-bearing
function returns an `RngTrace` the state writes as `results/2B/rng/<state>.trace.json`.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from engine.core import csr, detmath, rng
from engine.core.errors import EngineFailure
from engine.core.integerise import split_float, split_int
from engine.core.sha256 import sha256_rows, words_to_u64

from . import kernels as K
from .policies import (
    BUCKETS,
    PROFILE_NAMES,
    bucket_edges,
    by_bucket,
    by_bucket_profile,
    sigma_multiplier,
)

SEG = "2B"
KEY = ["merchant_id", "legal_country_iso", "site_order"]
Derive = Callable[[str, pa.Array], np.ndarray]


def stream_deriver(manifest_fingerprint: str, parameter_hash: str, seed: int) -> Derive:
    """derive(name, keys): one stream per domain key for family `2B.<name>` (DESIGN §5)."""
    def derive(name: str, keys: pa.Array) -> np.ndarray:
        return rng.derive_streams(f"{SEG}.{name}", manifest_fingerprint, parameter_hash, seed, "", keys)
    return derive


def merchant_keys(ids) -> pa.Array:
    return pa.array(np.asarray(ids, np.uint64)).cast(pa.string())


def _fail(code: str, msg: str, **ctx) -> EngineFailure:
    return EngineFailure(code, msg, ctx)


# ---------------------------------------------------------------- S1

def quantise(p: np.ndarray, off: np.ndarray, bits: int, dp: int) -> np.ndarray:
    """m_q per row: each CSR group's shares p onto the grid 2^bits by the one largest-remainder
    law (engine.core.integerise.split_float: floors, then +1 to the largest residues, ties to the
    earlier row = site-key order). int64; Σ per group = 2^bits exactly."""
    m_q, _, _ = split_float(np.asarray(p, np.float64), off, np.full(len(off) - 1, 1 << bits, np.int64), dp)
    return m_q


def site_weights(sites: pl.DataFrame, policy: dict, derive: Derive) -> tuple[pl.DataFrame, dict, rng.RngTrace]:
    """s1_site_weights from the site key + `tzid` (site_timezones); rows in site-key order."""
    s = sites.select(pl.col("merchant_id").cast(pl.UInt64), pl.col("legal_country_iso").cast(pl.String),
                     pl.col("site_order").cast(pl.Int32), pl.col("tzid").cast(pl.String)).sort(KEY)
    if s.height == 0 or s["tzid"].null_count():
        raise _fail("2B.S1.COVERAGE_MISMATCH", "no sites, or a site without a tzid")
    mids = s["merchant_id"].unique(maintain_order=True).to_numpy()
    off = csr.offsets(mids, s["merchant_id"].to_numpy())
    st = derive("site_weight_profile", merchant_keys(mids))
    mode = {"absolute": 0, "relative": 1}
    cap = policy["cap"]
    p, floored, prof, bucket, end, status = K.site_weights(
        st, off, bucket_edges(policy), by_bucket_profile(policy["profile_mix"]),
        by_bucket_profile(policy["concentration_alpha"]), by_bucket(policy["top1_soft_cap"]),
        float(policy["soft_cap_keep"]), by_bucket(policy["min_secondary_mass"]), mode[policy["floor"]["mode"]],
        float(policy["floor"]["value"]), int(cap["mode"] == "absolute"), float(cap.get("value", 1.0)),
        float(policy["normalisation_epsilon"]))
    bad = np.flatnonzero(status)
    if len(bad):
        code = {K.INVALID_BASE_WEIGHT: "INVALID_BASE_WEIGHT", K.NORMALISATION_FAILED: "NORMALISATION_FAILED"}
        raise _fail(f"2B.S1.{code[int(status[bad[0]])]}", "site weights of a merchant are not a distribution",
                    merchant_id=int(mids[bad[0]]))
    g = 1 << int(policy["quantised_bits"])
    m_q = quantise(p, off, int(policy["quantised_bits"]), int(policy["residue_dp"]))
    sums = np.add.reduceat(m_q, off[:-1])
    err = np.abs(m_q / g - p)
    if (sums != g).any() or (err > policy["quantisation_epsilon"]).any():
        i = int(np.argmax(err))
        raise _fail("2B.S1.QUANTISATION_INCOHERENT", "quantised masses off the grid or too far from p_weight",
                    merchant_id=int(s["merchant_id"][i]), max_error=float(err.max()))
    k = np.diff(off)
    out = s.rename({"tzid": "tz_group_id"}).with_columns(
        pl.Series("p_weight", p), pl.Series("m_q", m_q.astype(np.uint32)),
        pl.Series("profile", np.asarray(PROFILE_NAMES)[np.repeat(prof, k)]),
        pl.Series("size_bucket", np.asarray(BUCKETS)[np.repeat(bucket, k)]),
        pl.lit(policy["weight_source"]).alias("weight_source"),
        pl.lit(int(policy["quantised_bits"]), pl.UInt8).alias("quantised_bits"),
        pl.Series("floor_applied", floored))
    trace = rng.RngTrace()
    trace.add_states(f"{SEG}.site_weight_profile", st, end)
    counts = {"sites": s.height, "merchants": len(mids), "merchants_k_ge_2": int((k >= 2).sum()),
              "draws_expected": int((1 + k[k >= 2]).sum()), "max_quantisation_error": float(err.max())}
    return out, counts, trace


# ---------------------------------------------------------------- S3

def _groups(sw: pl.DataFrame) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    """Distinct (merchant, group) in (merchant_id, tz_group_id) order, merchant ids, CSR offsets."""
    grp = sw.group_by("merchant_id", "tz_group_id").agg(pl.col("size_bucket").first()) \
        .sort("merchant_id", "tz_group_id")
    mids = grp["merchant_id"].unique(maintain_order=True).to_numpy()
    return grp, mids, csr.offsets(mids, grp["merchant_id"].to_numpy())


def hash_uniform(label: str, manifest_fingerprint: str, ids) -> np.ndarray:
    """Untraced hash-uniform per id: SHA-256(label | mf | id), top 64 bits -> ((x>>11)+0.5)/2^53."""
    w = sha256_rows(merchant_keys(ids), f"{label}|{manifest_fingerprint}|".encode())
    u = ((words_to_u64(w, 0) >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0 ** 53
    return np.minimum(u, float.fromhex("0x1.fffffffffffffp-1"))


def _grid(goff: np.ndarray, n_days: int) -> tuple[np.ndarray, np.ndarray]:
    """Merchant index and (day, group row) of every S3 row, in the kernel's row order."""
    gm = np.diff(goff)
    rows_m = gm * n_days
    m = np.repeat(np.arange(len(gm)), rows_m)
    r = np.arange(int(rows_m.sum())) - np.repeat(np.cumsum(rows_m) - rows_m, rows_m)
    gr = np.repeat(gm, rows_m)
    return m, r // gr, goff[m] + r % gr


def day_effects(sw: pl.DataFrame, policy: dict, days: np.ndarray, manifest_fingerprint: str,
                derive: Derive) -> tuple[pl.DataFrame, dict, rng.RngTrace]:
    """s3_day_effects: one γ per (merchant, utc_day, tz_group) in that order (chapter 2B.S3)."""
    days = np.asarray(days, "datetime64[D]")
    grp, mids, goff = _groups(sw)
    b_idx = grp["size_bucket"].replace_strict({b: i for i, b in enumerate(BUCKETS)}, return_dtype=pl.Int64).to_numpy()
    h = hash_uniform("2B.S3.sigma_jitter", manifest_fingerprint, mids)
    hm = np.repeat(h, np.diff(goff))
    tz = grp["tz_group_id"].to_numpy()
    uniq, inv = np.unique(tz, return_inverse=True)
    mult = sigma_multiplier(list(uniq), policy)[inv]
    raw = by_bucket(policy["sigma_base_by_bucket"])[b_idx] * (1 + policy["sigma_jitter_amplitude"] * (2 * hm - 1)) * mult
    sigma = np.clip(raw, policy["sigma_bounds"]["min"], policy["sigma_bounds"]["max"])
    amp = by_bucket(policy["weekly_amp_by_bucket"])[b_idx[goff[:-1]]]
    dow = (days.astype(np.int64) + 3) % 7                  # 1970-01-01 was a Thursday; Monday = 0
    cos_dow = detmath.cos(2 * np.pi * dow / 7)
    st = derive("day_effect_gamma", merchant_keys(mids))
    gamma, lg, sg, c_hi, c_lo, clipped, end = K.day_effects(
        st, goff, sigma, amp, cos_dow, float(policy["gamma_clip"]["min"]), float(policy["gamma_clip"]["max"]))
    if not np.isfinite(gamma).all() or (gamma <= 0).any():
        raise _fail("2B.S3.NONFINITE_GAMMA", "a day effect is not a finite positive number")
    m, d, g = _grid(goff, len(days))
    out = pl.DataFrame({"merchant_id": mids[m], "utc_day": days[d], "tz_group_id": tz[g], "gamma": gamma,
                        "log_gamma": lg, "sigma_gamma": sg, "rng_counter_hi": c_hi, "rng_counter_lo": c_lo})
    trace = rng.RngTrace()
    trace.add_states(f"{SEG}.day_effect_gamma", st, end)
    counts = {"rows": out.height, "merchants": len(mids), "days": len(days), "clipped_rows": int(clipped.sum()),
              "sigma_clipped_groups": int((raw != sigma).sum())}
    return out, counts, trace


# ---------------------------------------------------------------- S4

def group_weights(sw: pl.DataFrame, de: pl.DataFrame, policy: dict) -> tuple[pl.DataFrame, dict]:
    """s4_group_weights on S3's keys: p_group = base_share_reg·γ / Σ_g (chapter 2B.S4)."""
    s = sw.sort(KEY)
    grp, mids, goff = _groups(s)
    n_days = de["utc_day"].n_unique() if de.height else 0
    m, d, g = _grid(goff, n_days)
    days = np.sort(de["utc_day"].unique().to_numpy())
    exp_m = mids[m]
    if (de.height != len(m) or (de["merchant_id"].to_numpy() != exp_m).any()
            or (de["tz_group_id"].to_numpy() != grp["tz_group_id"].to_numpy()[g]).any()
            or (de["utc_day"].to_numpy() != days[d]).any()):
        raise _fail("2B.S4.JOIN_KEY_MISMATCH", "s3_day_effects rows are not the merchants x days x groups grid of "
                    "s1_site_weights in writer order")
    site_grp = s.join(grp.with_row_index("_g").select("merchant_id", "tz_group_id", "_g"),
                      on=["merchant_id", "tz_group_id"], how="left", maintain_order="left")["_g"].to_numpy()
    soff = csr.offsets(mids, s["merchant_id"].to_numpy())
    base = K.base_shares(s["p_weight"].to_numpy(), site_grp.astype(np.int64), soff, goff)
    tot = np.add.reduceat(base, goff[:-1])
    if (np.abs(tot - 1.0) > 1e-9).any():
        i = int(np.argmax(np.abs(tot - 1.0)))
        raise _fail("2B.S4.BASE_SHARE_SUM_INVALID", "group base shares do not sum to 1", merchant_id=int(mids[i]),
                    total=float(tot[i]))
    reg, lam = K.regularise(base, goff, bool(policy["enabled"]), int(policy["apply_when_groups_ge"]),
                            float(policy["max_p_group_soft_cap"]), float(policy["entropy_floor"]),
                            float(policy["max_blend"]), int(policy["bisection_iterations"]))
    gamma = de["gamma"].to_numpy()
    p, mass, denom, min_den = K.group_weights(reg, goff, gamma, n_days)
    if len(p) and not min_den > 0:
        raise _fail("2B.S4.ZERO_DENOMINATOR", "a (merchant, day) has zero total group mass")
    if len(p):
        per_md = np.add.reduceat(p, np.flatnonzero(np.r_[True, (m[1:] != m[:-1]) | (d[1:] != d[:-1])]))
        if (np.abs(per_md - 1.0) > 1e-12).any():
            raise _fail("2B.S4.NORMALISATION_FAILED", "p_group does not sum to 1 for a (merchant, day)")
    out = de.select("merchant_id", "utc_day", "tz_group_id").with_columns(
        pl.Series("p_group", p), pl.Series("base_share", base[g]), pl.Series("base_share_reg", reg[g]),
        pl.Series("gamma", gamma), pl.Series("mass_raw", mass), pl.Series("denom_raw", denom))
    counts = {"rows": out.height, "merchants_regularised": int((lam > 0).sum()),
              "merchants_multi_group": int((np.diff(goff) >= 2).sum())}
    return out, counts


# ---------------------------------------------------------------- S2 (alias slices; construction in engine.core.alias)

def _core_alias_builder(bits: int):
    """engine.core.alias's builder as (m_q, off) -> (prob_q, alias). The brief names it
    build_alias_csr(m_q, off); the branch writing engine/core/alias.py exposes
    build_alias_q32(offsets, m_q, bits). Whichever is there is used."""
    from engine.core import alias
    if hasattr(alias, "build_alias_csr"):
        return alias.build_alias_csr
    return lambda m, off: alias.build_alias_q32(off, m, bits)


def alias_slices(sw: pl.DataFrame, quantised_bits: int, build_alias=None) -> pl.DataFrame:
    """s2_alias_table: one slice per (merchant, tz_group), sites in key order, masses re-quantised
    within the slice to 2^b by the largest-remainder law, then the integer alias build.

    `build_alias(m_q u32[], off i64[]) -> (prob_q u32[], alias u32[])` defaults to
    engine.core.alias.build_alias_csr (the one implementation; 3B and 5B reuse it).
    """
    if build_alias is None:
        build_alias = _core_alias_builder(quantised_bits)
    s = sw.sort("merchant_id", "tz_group_id", "legal_country_iso", "site_order")
    mg = s.select(pl.struct("merchant_id", "tz_group_id").rle_id()).to_series().to_numpy()
    off = csr.offsets(np.arange(int(mg[-1]) + 1 if len(mg) else 0), mg)
    g = 1 << int(quantised_bits)
    m, _, _ = split_int(s["m_q"].cast(pl.Int64).to_numpy(), off, np.full(len(off) - 1, g, np.int64))
    prob_q, alias = build_alias(m.astype(np.uint32), off)
    slot = np.arange(s.height) - np.repeat(off[:-1], np.diff(off))
    return s.select("merchant_id", "tz_group_id").with_columns(
        pl.Series("slot", slot.astype(np.uint32)), s["site_order"], s["legal_country_iso"],
        pl.Series("m_slice", m.astype(np.uint32)), pl.Series("prob_q", np.asarray(prob_q, np.uint32)),
        pl.Series("alias_slot", np.asarray(alias, np.uint32)))


# ---------------------------------------------------------------- S5 router

@dataclass(frozen=True)
class RouterPlan:
    md: pl.DataFrame              # (merchant_id, utc_day) rows, index = stream row
    md_off: np.ndarray            # CSR over group rows per md
    p_group: np.ndarray
    group_id: np.ndarray          # tz_group_id per group row
    row_slice: np.ndarray         # alias slice per group row
    slice_off: np.ndarray
    prob_q: np.ndarray
    alias: np.ndarray
    slot_site: pl.DataFrame       # per slot row: merchant_id, tz_group_id, legal_country_iso, site_order, m_slice
    st_group: np.ndarray
    st_site: np.ndarray


def day_keys(md: pl.DataFrame) -> pa.Array:
    """Domain key `merchant_id|YYYY-MM-DD` of each (merchant, utc_day)."""
    return md.select(pl.format("{}|{}", "merchant_id", pl.col("utc_day").dt.strftime("%Y-%m-%d"))).to_series().to_arrow()


def router_plan(gw: pl.DataFrame, alias_table: pl.DataFrame, derive: Derive) -> RouterPlan:
    """Flatten s4_group_weights and the alias slices into the router's CSR arrays."""
    gw = gw.sort("merchant_id", "utc_day", "tz_group_id")
    at = alias_table.sort("merchant_id", "tz_group_id", "slot")
    slices = at.select("merchant_id", "tz_group_id").unique(maintain_order=True).with_row_index("_s")
    sl_rows = at.join(slices, on=["merchant_id", "tz_group_id"], maintain_order="left")["_s"].to_numpy()
    slice_off = csr.offsets(np.arange(slices.height), sl_rows)
    rs = gw.join(slices, on=["merchant_id", "tz_group_id"], how="left", maintain_order="left")["_s"]
    if rs.null_count():
        raise _fail("2B.S5.ALIAS_INDEX_MISMATCH", "a (merchant, tz_group) of s4_group_weights has no alias slice")
    md = gw.select("merchant_id", "utc_day").unique(maintain_order=True)
    md_rows = gw.join(md.with_row_index("_md"), on=["merchant_id", "utc_day"], maintain_order="left")["_md"].to_numpy()
    keys = day_keys(md)
    return RouterPlan(md, csr.offsets(np.arange(md.height), md_rows), gw["p_group"].to_numpy(),
                      gw["tz_group_id"].to_numpy(), rs.to_numpy().astype(np.int64), slice_off,
                      at["prob_q"].to_numpy(), at["alias_slot"].to_numpy(),
                      at.select("merchant_id", "tz_group_id", "legal_country_iso", "site_order", "m_slice"),
                      derive("alias_pick_group", keys), derive("alias_pick_site", keys))


def route_arrivals(plan: RouterPlan, merchant_id, utc_day, arrival_seq) -> tuple[pl.DataFrame, rng.RngTrace]:
    """(tz_group_id, legal_country_iso, site_order) per arrival, in input order; 2 draws each."""
    arr = pl.DataFrame({"merchant_id": np.asarray(merchant_id, np.uint64),
                        "utc_day": np.asarray(utc_day, "datetime64[D]")}).with_columns(pl.col("utc_day").cast(pl.Date))
    idx = arr.join(plan.md.with_row_index("_md"), on=["merchant_id", "utc_day"], how="left",
                   maintain_order="left")["_md"]
    if idx.null_count():
        raise _fail("2B.S5.ALIAS_INDEX_MISMATCH", "an arrival's (merchant, utc_day) is not in s4_group_weights")
    md = idx.to_numpy().astype(np.int64)
    seq = np.asarray(arrival_seq, np.uint64)
    grp, slot = K.route(md, seq, plan.st_group, plan.st_site, plan.md_off, plan.p_group, plan.row_slice,
                        plan.slice_off, plan.prob_q, plan.alias)
    site = plan.slot_site[slot]
    if (site["tz_group_id"].to_numpy() != plan.group_id[grp]).any():
        raise _fail("2B.S5.GROUP_SITE_MISMATCH", "a routed site's tz group differs from the picked group")
    trace = rng.RngTrace()
    n = len(seq)
    for fam in ("alias_pick_group", "alias_pick_site"):
        trace.add(f"{SEG}.{fam}", n, n, n)
    return site.select("tz_group_id", "legal_country_iso", "site_order"), trace


def audit_routes(plan: RouterPlan, arrivals_per_merchant_day: int, max_merchants: int, days: int) -> pl.DataFrame:
    """The S5 audit roster (first merchants by id x first days x N arrivals, seq 0..N-1), routed."""
    mids = plan.md["merchant_id"].unique().sort().head(max_merchants)
    md = plan.md.filter(pl.col("merchant_id").is_in(mids.implode())) \
        .filter(pl.col("utc_day").rank("dense").over("merchant_id") <= days)
    n = arrivals_per_merchant_day
    roster = md.select(pl.all().repeat_by(n).explode()).with_columns(
        (pl.int_range(pl.len()) % n).cast(pl.UInt64).alias("arrival_seq"))
    routes, _ = route_arrivals(plan, roster["merchant_id"], roster["utc_day"], roster["arrival_seq"])
    return pl.concat([roster, routes], how="horizontal")


def site_shares(routes: pl.DataFrame, gw: pl.DataFrame, alias_table: pl.DataFrame, quantised_bits: int) -> pl.DataFrame:
    """Per site: routed count, empirical share within its merchant and the expected share
    Σ_days p_group(day, g) · m_slice/2^b / days (over the (merchant, day)s routed, equal weight)."""
    g = float(1 << int(quantised_bits))
    n_md = routes.group_by("merchant_id", "utc_day").len()
    if n_md["len"].n_unique() > 1:
        raise ValueError("site_shares expects the same number of arrivals per (merchant, utc_day)")
    pg = gw.join(n_md.select("merchant_id", "utc_day"), on=["merchant_id", "utc_day"]) \
        .group_by("merchant_id", "tz_group_id").agg(pl.col("p_group").sum()) \
        .join(n_md.group_by("merchant_id").len("n_days"), on="merchant_id") \
        .with_columns((pl.col("p_group") / pl.col("n_days")).alias("mean_p_group"))
    exp = alias_table.join(pg, on=["merchant_id", "tz_group_id"]).select(
        "merchant_id", "tz_group_id", "legal_country_iso", "site_order",
        (pl.col("mean_p_group") * pl.col("m_slice").cast(pl.Float64) / g).alias("expected_share"))
    cnt = routes.group_by("merchant_id", "legal_country_iso", "site_order").len("count")
    return exp.join(cnt, on=KEY, how="left").with_columns(pl.col("count").fill_null(0)).with_columns(
        (pl.col("count") / pl.col("count").sum().over("merchant_id")).alias("share")).sort(KEY)
