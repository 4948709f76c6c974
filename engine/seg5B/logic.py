"""5B S1-S3 logic: Polars frames and numpy arrays around the numba kernels (chapter 5B §3).

The λ domain is addressed by a coarse key index ``c`` over the sorted distinct
(merchant_id, zone_representation, channel_group) rows (`domain_keys`), and each λ row by
(c, bucket_index). Streams come from a `derive(family_name, domain_keys) -> (n, 3) uint64`
callable (`stream_deriver`), so nothing here knows run contexts or files. RNG-bearing functions
return an `RngTrace` for results/5B/rng/<state>.trace.json.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from engine.core import detmath, rng
from engine.core.errors import EngineFailure
from engine.core.sha256 import sha256_rows, words_to_u64

from . import kernels as K
from .policies import CHANNELS, MODES

SEG = "5B"
DOMAIN = ["merchant_id", "zone_representation", "channel_group"]
Derive = Callable[[str, pa.Array], np.ndarray]
_US = 1_000_000


def stream_deriver(manifest_fingerprint: str, parameter_hash: str, seed: int, scenario_id: str) -> Derive:
    """derive(name, keys): one stream per domain key for family `5B.<name>` in a scenario."""
    def derive(name: str, keys: pa.Array) -> np.ndarray:
        return rng.derive_streams(f"{SEG}.{name}", manifest_fingerprint, parameter_hash, seed, scenario_id, keys)
    return derive


def _fail(code: str, msg: str, **ctx) -> EngineFailure:
    return EngineFailure(code, msg, ctx)


# ---------------------------------------------------------------- S1 time grid

@dataclass(frozen=True)
class Grid:
    h0_us: int          # horizon start, UTC µs
    d_us: int           # bucket duration, µs
    H: int              # buckets


def _unix_s(x) -> int:
    if isinstance(x, str):
        x = dt.datetime.fromisoformat(x.replace("Z", "+00:00"))
    if isinstance(x, dt.datetime):
        if x.tzinfo is None:
            x = x.replace(tzinfo=dt.UTC)
        return int(x.timestamp())
    return int(x)


def time_grid(start_utc, end_utc, bucket_seconds: int, policy: dict, is_baseline: bool,
              is_stress: bool) -> tuple[pl.DataFrame, Grid]:
    """s1_time_grid_5B rows for one scenario [start, end), and its Grid."""
    code = f"{SEG}.S1.SCENARIO_HORIZON_INVALID"
    s, e, D = _unix_s(start_utc), _unix_s(end_utc), int(bucket_seconds)
    if D != policy["bucket_duration_seconds"]:
        raise _fail(code, "scenario bucket differs from time_grid_policy_5B", scenario=D,
                    policy=policy["bucket_duration_seconds"])
    if e <= s or s % D or e % D:
        raise _fail(code, "horizon must be non-empty and aligned to the bucket", start=s, end=e, bucket=D)
    H = (e - s) // D
    days = (e - s) / 86400
    if H > policy["max_buckets_per_scenario"] or not policy["min_horizon_days"] <= days <= policy["max_horizon_days"]:
        raise _fail(code, "horizon outside the guardrails", buckets=H, days=days)
    if is_baseline == is_stress:
        raise _fail(code, "exactly one of scenario_is_baseline / scenario_is_stress must be true")
    b = np.arange(H, dtype=np.int64)
    start_s = s + b * D
    dow = ((start_s // 86400 + 3) % 7 + 1).astype(np.int8)          # 1970-01-01 was a Thursday (4)
    grid = pl.DataFrame({
        "bucket_index": b.astype(np.int32),
        "bucket_start_utc": pl.Series(start_s * _US).cast(pl.Datetime("us", "UTC")),
        "bucket_end_utc": pl.Series((start_s + D) * _US).cast(pl.Datetime("us", "UTC")),
        "bucket_duration_seconds": np.full(H, D, np.int32),
        "local_day_of_week": dow,
        "local_minutes_since_midnight": ((start_s % 86400) // 60).astype(np.int16),
        "is_weekend": np.isin(dow, np.asarray(policy["weekend_days"], np.int8)),
        "scenario_is_baseline": np.full(H, is_baseline),
        "scenario_is_stress": np.full(H, is_stress),
    })
    return grid, Grid(s * _US, D * _US, int(H))


# ---------------------------------------------------------------- S1 grouping

def domain_keys(lam: pl.DataFrame) -> tuple[pl.DataFrame, np.ndarray]:
    """λ rows sorted by (merchant, zone, channel, bucket) -> (domain table, row_c int32).

    The domain table holds the distinct (merchant_id, zone_representation, channel_group) in that
    order; row_c is each λ row's index into it. `lam` must already be in that order (5A writes
    files sorted by primary key); a row out of order is `5B.S2.DOMAIN_ALIGN_FAILED`.
    """
    rid = lam.select(pl.struct(DOMAIN).rle_id().alias("c"))["c"].to_numpy().astype(np.int32)
    dom = lam.select(DOMAIN).with_columns(pl.Series("c", rid)).unique("c", keep="first", maintain_order=True)
    if dom.height != lam.select(DOMAIN).n_unique() or not dom.select(DOMAIN).equals(dom.sort(DOMAIN).select(DOMAIN)):
        raise _fail(f"{SEG}.S2.DOMAIN_ALIGN_FAILED", "λ rows are not sorted by (merchant, zone, channel, bucket)")
    return dom.drop("c").with_columns(pl.col("merchant_id").cast(pl.UInt64)), rid


def _hash_u64(strings: pl.Series, word: int) -> np.ndarray:
    return words_to_u64(sha256_rows(strings.to_arrow()), word)


def grouping(domain: pl.DataFrame, profile: pl.DataFrame, classification: pl.DataFrame, scenario_id: str,
             is_baseline: bool, policy: dict) -> tuple[pl.DataFrame, dict]:
    """s1_grouping_5B: one group per domain row (chapter 5B §3 S1, steps 1-5).

    `profile`: (merchant_id, zone_representation, demand_class); `classification`:
    (merchant_id, virtual_mode). Returns (rows in domain order, realism report)."""
    d = (domain.join(profile.select("merchant_id", "zone_representation", "demand_class"),
                     on=["merchant_id", "zone_representation"], how="left", maintain_order="left")
         .join(classification.select("merchant_id", "virtual_mode"), on="merchant_id", how="left",
               maintain_order="left"))
    missing = d.filter(pl.col("demand_class").is_null() | pl.col("virtual_mode").is_null())
    if missing.height:
        r = missing.row(0, named=True)
        raise _fail(f"{SEG}.S1.GROUP_ASSIGNMENT_INCOMPLETE", "domain row without demand_class or virtual_mode",
                    merchant_id=r["merchant_id"], zone=r["zone_representation"], n=missing.height)
    band = "baseline" if is_baseline else "stress"
    # zone_group_id = "zg" + (first digest byte % zone_group_buckets)
    zmsg = d.select(pl.format("5B.zone_group|{}", "zone_representation")).to_series()
    zg_b = (_hash_u64(zmsg, 0) >> np.uint64(56)) % np.uint64(policy["zone_group_buckets"])
    d = d.with_columns(
        pl.lit(band).alias("scenario_band"),
        pl.when(pl.col("virtual_mode") == "NON_VIRTUAL").then(pl.lit("physical")).otherwise(pl.lit("virtual"))
        .alias("virtual_band"),
        pl.Series("zone_group_id", [f"zg{int(x)}" for x in range(policy["zone_group_buckets"])])
        .gather(zg_b.astype(np.int64)))
    msg = d.select(pl.format("5B.group|{}|{}|{}|{}|{}|{}", pl.lit(scenario_id), "demand_class", "channel_group",
                             "virtual_band", "zone_group_id", pl.col("merchant_id").cast(pl.String))).to_series()
    b = _hash_u64(msg, 0) % np.uint64(policy["in_stratum_buckets"])
    d = d.with_columns(pl.Series("b", b.astype(np.int64))).with_columns(
        pl.format("g|{}|{}|{}|{}|{}|b{}", "scenario_band", "demand_class", "channel_group", "virtual_band",
                  "zone_group_id", pl.col("b").cast(pl.String).str.zfill(2)).alias("group_id")).drop("b")
    sizes = d.group_by("group_id").len()["len"].to_numpy()
    rt = policy["realism_targets"]
    rep = {"groups": int(len(sizes)), "median_members": float(np.median(sizes)) if len(sizes) else 0.0,
           "max_group_share": float(sizes.max() / sizes.sum()) if len(sizes) else 0.0,
           "multi_member_fraction": float(np.mean(sizes > 1)) if len(sizes) else 0.0}
    misses = [k for k, ok in (
        ("groups", rt["min_groups_per_scenario"] <= rep["groups"] <= rt["max_groups_per_scenario"]),
        ("median_members", rep["median_members"] >= rt["min_group_members_median"]),
        ("max_group_share", rep["max_group_share"] <= rt["max_single_group_share"]),
        ("multi_member_fraction", rep["multi_member_fraction"] >= rt["min_multi_member_fraction"])) if not ok]
    rep["realism_misses"] = misses
    if misses and rt["enforce"]:
        raise _fail(f"{SEG}.S1.GROUP_ASSIGNMENT_INCOMPLETE", "grouping realism targets missed",
                    misses=",".join(misses), **{k: rep[k] for k in misses})
    return d.select("merchant_id", "zone_representation", "channel_group", "demand_class", "virtual_mode",
                    "scenario_band", "virtual_band", "zone_group_id", "group_id"), rep


# ---------------------------------------------------------------- S2 latent field

def _class_lookup(values: pl.Series, table: dict, code: str, what: str) -> np.ndarray:
    miss = sorted(set(values.unique().to_list()) - set(table))
    if miss:
        raise _fail(code, f"{what} has no entry", values=",".join(map(str, miss[:10])))
    return values.replace_strict(table, return_dtype=pl.Float64).to_numpy()


def latent_factors(groups: pl.DataFrame, H: int, policy: dict, derive: Derive) -> tuple[pl.DataFrame, np.ndarray, rng.RngTrace]:
    """Per distinct group (sorted by group_id): sigma, L and the factor series f (G, H).

    Returns (group table with g index, f, trace). One stream per group_id, H blocks each."""
    code = f"{SEG}.S2.LGCP_CONFIG_INVALID"
    g = (groups.group_by("group_id").agg(pl.col("scenario_band", "demand_class", "channel_group", "virtual_band").first())
         .sort("group_id"))
    sg, ls = policy["sigma"], policy["length_scale"]
    sigma = (_class_lookup(g["scenario_band"], sg["base_by_band"], code, "sigma.base_by_band")
             * _class_lookup(g["demand_class"], sg["class_multipliers"], code, "sigma.class_multipliers")
             * _class_lookup(g["channel_group"], policy["channel_multipliers"], code, "channel_multipliers")
             * _class_lookup(g["virtual_band"], policy["virtual_multipliers"], code, "virtual_multipliers"))
    sigma = np.clip(sigma, *policy["sigma_bounds"])
    L = np.clip(_class_lookup(g["scenario_band"], ls["base_by_band"], code, "length_scale.base_by_band")
                * _class_lookup(g["demand_class"], ls["class_multipliers"], code, "length_scale.class_multipliers"),
                *policy["length_scale_bounds"])
    phi = detmath.exp(-1.0 / L)
    streams = derive("latent_vector", g["group_id"].to_arrow())
    f = np.empty((g.height, H), np.float64)
    ends = np.empty((g.height, 5), np.uint64)
    cl = policy["clipping"]
    K.latent_field(streams, sigma, phi, H, policy["latent_model"] == "iid", float(cl["min_factor"]),
                   float(cl["max_factor"]), f, ends)
    trace = rng.RngTrace()
    trace.add_states(f"{SEG}.latent_vector", streams, ends)
    return g.with_columns(pl.Series("sigma", sigma), pl.Series("length_scale", L),
                          pl.Series("g", np.arange(g.height, dtype=np.int32))), f, trace


def realised_intensity(row_c: np.ndarray, row_b: np.ndarray, lam_target: np.ndarray, c_group: np.ndarray,
                       f: np.ndarray, lambda_max: float) -> tuple[np.ndarray, np.ndarray]:
    """(lambda_random_component, lambda_realised) per λ row: f of its group at its bucket."""
    if not np.all(np.isfinite(lam_target)) or np.any(lam_target < 0):
        raise _fail(f"{SEG}.S2.REALISED_NUMERIC_INVALID", "λ target not finite and >= 0")
    fac = f[c_group[row_c], row_b]
    return fac, np.minimum(lam_target * fac, lambda_max)


# ---------------------------------------------------------------- S3 counts

def count_params(domain_groups: pl.DataFrame, policy: dict) -> np.ndarray:
    """kappa per domain row (NB2): clamp(base[band] · class_mult[class], kappa_bounds)."""
    code = f"{SEG}.S3.COUNT_CONFIG_INVALID"
    kp = policy["nb2"]["kappa"]
    kappa = np.clip(_class_lookup(domain_groups["scenario_band"], kp["base_by_band"], code, "kappa.base_by_band")
                    * _class_lookup(domain_groups["demand_class"], kp["class_multipliers"], code,
                                    "kappa.class_multipliers"), *policy["kappa_bounds"])
    if np.any(~(kappa > 0)):
        raise _fail(f"{SEG}.S3.PARAM_DERIVATION_INVALID", "kappa <= 0")
    return kappa


def coarse_key_strings(domain: pl.DataFrame) -> pa.Array:
    """Stream domain key `merchant_id|zone|channel_group` per domain row (S3 and S4 families)."""
    return domain.select(pl.format("{}|{}|{}", pl.col("merchant_id").cast(pl.String), "zone_representation",
                                   "channel_group")).to_series().to_arrow()


def bucket_counts(row_c: np.ndarray, row_b: np.ndarray, mu: np.ndarray, kappa: np.ndarray, keys: np.ndarray,
                  policy: dict) -> tuple[np.ndarray, np.ndarray, rng.RngTrace]:
    """(count_N int32, capped bool, trace) per λ row; `keys` = derive("bucket_count", coarse keys)."""
    if not np.all(np.isfinite(mu)) or np.any(mu < 0):
        raise _fail(f"{SEG}.S3.PARAM_DERIVATION_INVALID", "mu not finite and >= 0")
    n = np.empty(len(mu), np.int32)
    capped = np.empty(len(mu), np.bool_)
    wrapped = np.empty(len(mu), np.bool_)
    nb2 = policy["count_law"] == "nb2"
    K.bucket_counts(keys, row_c.astype(np.int64), row_b.astype(np.int64), mu, kappa, nb2,
                    float(policy["lambda_zero_eps"]), int(policy["max_count_per_bucket"]),
                    float(policy["poisson_exact_lambda_max"]), int(policy["poisson_n_cap_exact"]), n, capped, wrapped)
    if wrapped.any():
        raise _fail(f"{SEG}.S3.RNG_ACCOUNTING_MISMATCH", "Philox counter wrapped (wrap_policy abort)",
                    row=int(np.argmax(wrapped)))
    events = int(np.count_nonzero(mu > policy["lambda_zero_eps"]))
    trace = rng.RngTrace()
    used = np.flatnonzero(mu > policy["lambda_zero_eps"])
    first = last = None
    if len(used):
        first = _ctr(keys, row_c[used[0]], row_b[used[0]], 0)
        last = _ctr(keys, row_c[used[-1]], row_b[used[-1]], 0)
    trace.add(f"{SEG}.bucket_count", events, events * (2 if nb2 else 1), events, first, last)
    return n, capped, trace


def _ctr(keys: np.ndarray, c: int, b: int, k: int) -> tuple[int, int]:
    v = ((int(keys[c, 1]) << 64) | int(keys[c, 2])) + (int(b) << 32) + int(k)
    return (v >> 64) & ((1 << 64) - 1), v & ((1 << 64) - 1)


def mode_codes(modes: pl.Series) -> np.ndarray:
    return modes.replace_strict({m: i for i, m in enumerate(MODES)}, return_dtype=pl.Int8).to_numpy()


def channel_codes(ch: pl.Series) -> np.ndarray:
    return ch.replace_strict({m: i for i, m in enumerate(CHANNELS)}, return_dtype=pl.Int32).to_numpy()
