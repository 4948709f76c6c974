"""5A.S2 logic: the local-week grid and one normalised 168-hour shape per (class, channel_group, country, tzid).

Shape of a key: its template variant (picked by `u_det("5A.S2.template", class, cg, tz, ph)` among the
rule's candidates) evaluated at bucket midpoints, times its zone profile (zg<x mod 8> from the same hash, or a
country override such as the Gulf Fri-Sat weekend), normalised to Σ = 1. Transcendentals via detmath.
"""
from __future__ import annotations

import numpy as np
import polars as pl

from engine.core import detmath
from engine.core.errors import EngineFailure

from .common import u_det_columns

T_WEEK = 168
SHAPE_KEY = ["demand_class", "channel_group", "legal_country_iso", "zone_representation"]


def _fail(name: str, msg: str, **ctx) -> EngineFailure:
    return EngineFailure(f"5A.S2.{name}", msg, ctx)


def time_grid(grid: dict) -> pl.DataFrame:
    """`shape_grid_definition_5A`: k = 0..167 from Monday 00:00 local."""
    k = np.arange(T_WEEK)
    dow = 1 + k // 24
    minute = (k % 24) * 60
    oh = grid["nominal_open_hours"]
    return pl.DataFrame({
        "bucket_index": k.astype(np.int16), "local_day_of_week": dow.astype(np.int8),
        "local_minutes_since_midnight": minute.astype(np.int16),
        "bucket_duration_minutes": np.full(T_WEEK, grid["bucket_duration_minutes"], np.int16),
        "is_weekend": np.isin(dow, grid["weekend_days"]),
        "is_nominal_open_hours": np.isin(dow, oh["days"]) & (minute >= oh["start_minute"])
        & (minute < oh["end_minute_exclusive"]),
        "time_grid_version": [grid["time_grid_version"]] * T_WEEK})


def template_matrix(t: dict, shift_min: float) -> np.ndarray:
    """(7, 24) unnormalised template values v = (dow_weight · g(minute + 30))^power, peaks shifted."""
    mid = np.arange(24) * 60.0 + 30.0
    g = np.full(24, float(t["baseline_floor"]))
    for c in t["daily_components"]:
        d = np.abs(mid - ((c["center_min"] + shift_min) % 1440.0))
        d = np.minimum(d, 1440.0 - d)                       # circular: peaks near midnight wrap
        g = g + c["amplitude"] * detmath.exp(-0.5 * (d / c["sigma_min"]) ** 2)
    v = np.asarray(t["dow_weights"], np.float64)[:, None] * g[None, :]
    return detmath.exp(t["power"] * detmath.log(v))


def resolved_templates(lib: dict) -> dict[str, np.ndarray]:
    """Every candidate `<base>.<suffix>` -> its (7, 24) matrix."""
    out = {}
    for t in lib["templates"]:
        for v in lib["variants"]:
            out[f"{t['template_id']}.{v['suffix']}"] = template_matrix(t, v["center_shift_min"])
    return out


def profile_matrix(prof: dict) -> np.ndarray:
    """(7, 24) zone multipliers: dow multiplier × every time window covering the bucket start."""
    m = np.repeat(np.asarray(prof["dow_multipliers"], np.float64)[:, None], 24, axis=1)
    minute = np.arange(24) * 60
    for w in prof["time_window_multipliers"]:
        days = range(1, 8) if w["days"] == "*" else w["days"]
        cover = (minute >= w["start_minute"]) & (minute < w["end_minute_exclusive"])
        for d in days:
            m[d - 1, cover] *= w["multiplier"]
    return m


def build_shapes(keys: pl.DataFrame, lib: dict, zm: dict, parameter_hash: str) -> tuple[pl.DataFrame, np.ndarray]:
    """(key table with template_id, zone_group_id, profile_id; shapes float64[n_keys, 168]) for the distinct
    SHAPE_KEY rows of `keys`, sorted by SHAPE_KEY."""
    keys = keys.select(SHAPE_KEY).unique().sort(SHAPE_KEY)
    n = keys.height
    u, x = u_det_columns("5A.S2.template", keys["demand_class"].to_list(), keys["channel_group"].to_list(),
                         keys["zone_representation"].to_list(), [parameter_hash] * n)
    rules = {r["demand_class"]: r for r in lib["template_resolution"]["rules"]}
    suffixes = [v["suffix"] for v in lib["variants"]]
    tmpl = resolved_templates(lib)
    profiles = {p["profile_id"]: p for p in zm["profiles"]}
    forced = {c: o["force_profile_id"] for o in zm["overrides"] for c in o["legal_country_iso_in"]}
    nb, prefix = zm["zone_group_mode"]["buckets"], zm["zone_group_mode"]["prefix"]
    tids, zgs, pids = [], [], []
    shapes = np.empty((n, T_WEEK), np.float64)
    pm_cache: dict[str, np.ndarray] = {}
    for i, (cls, cg, iso, _tz) in enumerate(keys.iter_rows()):   # one per distinct key (≤ a few thousand)
        rule = rules.get(cls)
        base = rule[cg] if rule is not None and cg in rule else lib["template_resolution"]["default_template_id"]
        tid = f"{base}.{suffixes[int(u[i] * len(suffixes))]}"
        zg = f"{prefix}{int(x[i] % np.uint64(nb))}"
        pid = forced.get(iso, zg)
        if pid not in profiles:
            raise _fail("ZONE_PROFILE_MISSING", "zone profile missing (FAIL_CLOSED)", profile_id=pid)
        prof = profiles[pid]
        if pid not in pm_cache:
            pm_cache[pid] = profile_matrix(prof)
        v = np.roll(tmpl[tid], -prof["dow_shift"], axis=0) * pm_cache[pid]   # day d reads template day d+shift
        flat = v.reshape(-1)
        s = float(np.sum(flat))
        if not np.isfinite(s) or s <= 0 or np.any(flat < 0):
            raise _fail("SHAPE_NORMALISATION_FAILED", "shape sum not positive and finite", template_id=tid)
        shapes[i] = flat / s
        tids.append(tid)
        zgs.append(zg)
        pids.append(pid)
    table = keys.with_columns(pl.Series("template_id", tids, pl.String), pl.Series("zone_group_id", zgs, pl.String),
                              pl.Series("profile_id", pids, pl.String))
    return table, shapes


def shapes_long(table: pl.DataFrame, shapes: np.ndarray) -> pl.DataFrame:
    """`class_zone_shape_5A` rows: 168 per key."""
    rep = table.select(pl.all().repeat_by(T_WEEK).explode())
    return rep.with_columns(pl.Series("bucket_index", np.tile(np.arange(T_WEEK, dtype=np.int16), table.height)),
                            pl.Series("shape_value", shapes.reshape(-1)))


def realism(table: pl.DataFrame, shapes: np.ndarray, lib: dict, zm: dict) -> dict:
    """Per-class masses of chapter 5A §S2 step 6 (WARN-level checks): measured values and pass flags."""
    rf = lib["realism_floors"]
    k = np.arange(T_WEEK)
    dow, minute = 1 + k // 24, (k % 24) * 60
    nw, ow = rf["night_window"], rf["office_window"]
    night = (minute >= nw["start_minute"]) & (minute < nw["end_minute_exclusive"])
    weekend = dow >= 6
    office = np.isin(dow, ow["days"]) & (minute >= ow["start_minute"]) & (minute < ow["end_minute_exclusive"])
    # the weekend check reads Sat/Sun: keys whose profile moves the weekend (dow_shift, e.g. Gulf) are skipped
    shifted = {p["profile_id"] for p in zm["profiles"] if p["dow_shift"]}
    cls = np.where(table["profile_id"].is_in(list(shifted)).to_numpy(), "", table["demand_class"].to_numpy())
    out = {}

    def mass(c, mask):
        sel = cls == c
        return float(shapes[sel][:, mask].sum(axis=1).min()) if sel.any() else None
    out["online_24h_night_mass_min"] = mass("online_24h", night)
    out["evening_weekend_weekend_mass_min"] = mass("evening_weekend", weekend)
    out["office_hours_office_mass_min"] = mass("office_hours", office)
    ratio = shapes.max(axis=1) / np.maximum(shapes.min(axis=1), 1e-300)
    out["nonflat_share"] = float(np.mean(ratio >= rf["nonflat_ratio_min"])) if len(ratio) else 1.0
    out["pass"] = {
        "night": out["online_24h_night_mass_min"] is None or out["online_24h_night_mass_min"] >= nw["min_mass_online_24h"],
        "weekend": out["evening_weekend_weekend_mass_min"] is None
        or out["evening_weekend_weekend_mass_min"] >= rf["min_weekend_mass_evening_weekend"],
        "office": out["office_hours_office_mass_min"] is None
        or out["office_hours_office_mass_min"] >= ow["min_mass_office_hours"],
        "nonflat": out["nonflat_share"] >= rf["nonflat_share_min"]}
    return out
