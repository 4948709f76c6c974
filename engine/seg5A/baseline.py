"""5A.S3 logic: baseline local-week intensity λ_base[row, k] = w_eff · shape[k] (chapter 5A §S3).

Rows are the S1 profile rows in primary-key order; `base` is a dense float64[rows, 168] matrix, the input
of the S4 projection kernel. Tail rescue lifts thin tail zones (recorded as tail_lift_applied); S1's
weekly_volume_expected is unchanged, so Σ_k λ_base = w · lift exactly (to rounding).
"""
from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa

from engine.core import detmath
from engine.core.errors import EngineFailure

from .shapes import SHAPE_KEY, T_WEEK


def _fail(name: str, msg: str, **ctx) -> EngineFailure:
    return EngineFailure(f"5A.S3.{name}", msg, ctx)


def tail_lift(profile: pl.DataFrame, ds: dict, bp: dict) -> np.ndarray:
    """float64[rows]: lift = min(max_mult, max(1, (ε / ratio)^p)) for tail zones with ratio < ε, else 1."""
    tr = bp["tail_rescue"]
    n = len(profile)
    if not tr["enabled"]:
        return np.ones(n)
    ref_of = {c["demand_class"]: c["ref_per_site_weekly"] for c in ds["class_params"]}
    ref = profile["zone_site_count"].to_numpy() * profile["demand_class"].replace_strict(
        ref_of, return_dtype=pl.Float64).to_numpy()
    w = profile["weekly_volume_expected"].to_numpy()
    tail = (profile["zone_role"].to_numpy() == tr["target_subclass"]) & (w > 0) & (ref > 0)
    ratio = np.where(tail, w / np.where(ref > 0, ref, 1.0), 1.0)
    eps = tr["tail_floor_epsilon"]
    raw = detmath.exp(tr["tail_lift_power"] * detmath.log(eps / ratio))
    lift = np.minimum(tr["tail_lift_max_multiplier"], np.maximum(1.0, raw))
    return np.where(tail & (ratio < eps), lift, 1.0)


def baseline(profile: pl.DataFrame, shape_keys: pl.DataFrame, shapes: np.ndarray, ds: dict, bp: dict
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(base float64[rows, 168], w_eff float64[rows], lift float64[rows]) for the profile rows in their order."""
    idx = (profile.select(SHAPE_KEY).with_row_index("_r")
           .join(shape_keys.select(SHAPE_KEY).with_row_index("_s"), on=SHAPE_KEY, how="left").sort("_r"))
    if idx["_s"].null_count():
        raise _fail("SHAPE_JOIN_FAILED", "profile row without a shape", n_rows=idx["_s"].null_count())
    w = profile["weekly_volume_expected"].to_numpy().astype(np.float64)
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise _fail("SCALE_JOIN_FAILED", "weekly volume missing, negative or non-finite")
    lift = tail_lift(profile, ds, bp)
    w_eff = w * lift
    base = shapes[idx["_s"].to_numpy()] * w_eff[:, None]
    hl = bp["hard_limits"]
    if not np.all(np.isfinite(base)) or np.any(base < 0):
        raise _fail("INTENSITY_NUMERIC_INVALID", "λ_base negative or non-finite")
    if base.size and base.max() > hl["max_lambda_per_bucket"]:
        r = int(np.argmax(base.max(axis=1)))
        raise _fail("LAMBDA_HARD_LIMIT_EXCEEDED", "λ_base above max_lambda_per_bucket (clip_mode hard_fail)",
                    merchant_id=int(profile["merchant_id"][r]), zone=profile["zone_representation"][r])
    tot = base.sum(axis=1)
    if np.any(np.abs(tot - w_eff) > bp["weekly_sum_rel_tol"] * np.maximum(w_eff, 1.0)):
        raise _fail("WEEKLY_SUM_MISMATCH", "Σ_k λ_base differs from w_eff")
    return base, w_eff, lift


def baseline_long(profile: pl.DataFrame, base: np.ndarray, lift: np.ndarray) -> pl.DataFrame:
    """`merchant_zone_baseline_local_5A` rows: 168 per profile row, in primary-key order."""
    keys = profile.select("merchant_id", "zone_representation", "legal_country_iso", "demand_class", "channel_group")
    n = keys.height
    rep = keys.select(pl.all().repeat_by(T_WEEK).explode())
    return rep.with_columns(
        pl.Series("bucket_index", np.tile(np.arange(T_WEEK, dtype=np.int16), n)),
        pl.Series("lambda_local_base", base.reshape(-1)),
        pl.Series("tail_lift_applied", np.repeat(lift, T_WEEK)))


BASE_COLUMNS = ["merchant_id", "zone_representation", "bucket_index", "lambda_local_base"]


def base_matrix(table, profile: pl.DataFrame, code: str = "5A.S4") -> np.ndarray:
    """float64[rows, 168] λ_base from the published `merchant_zone_baseline_local_5A` (an Arrow table, in its
    contract's key order), aligned with the profile rows; checked on the keys (no string columns decoded
    beyond one per profile row, no sort)."""
    n = profile.height
    if table.num_rows != n * T_WEEK:
        raise EngineFailure(f"{code}.BASELINE_PROFILE_MISMATCH", "baseline rows != 168 per profile row",
                            {"rows": table.num_rows, "profile_rows": n})
    first = np.arange(n) * T_WEEK
    h = table.column("bucket_index").to_numpy()
    mid = table.column("merchant_id").to_numpy()[first]
    zone = table.column("zone_representation").take(first).cast(pa.string()).to_pylist()
    if not (np.array_equal(h, np.tile(np.arange(T_WEEK, dtype=h.dtype), n))
            and np.array_equal(mid, profile["merchant_id"].to_numpy())
            and zone == profile["zone_representation"].to_list()):
        raise EngineFailure(f"{code}.BASELINE_PROFILE_MISMATCH", "baseline keys are not the profile rows x 168 buckets",
                            {"profile_rows": n})
    return table.column("lambda_local_base").to_numpy().reshape(n, T_WEEK)
