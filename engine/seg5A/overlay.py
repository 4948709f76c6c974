"""5A.S4 overlay factors F[signature, local slot] (chapter 5A §S4 steps 2-3).

A signature is (demand_class, country, tzid), plus merchant_id for merchants named by a merchant-scoped
event; F is evaluated per signature on its zone's local slots and broadcast to rows. Per type: only the
most specific active events count (rank 8·merchant + 4·tzid + 2·country + 1·class), aggregated MIN or MAX;
then the masks (OUTAGE caps CAMPAIGN/PAYDAY/STRESS at 1, STRESS caps CAMPAIGN), then the product in the fixed
order OUTAGE, STRESS, CAMPAIGN, PAYDAY, HOLIDAY, clamped to [min_factor, max_factor].

UTC-basis events act on a slot through its UTC bucket (`LocalGrid.rep_h`: first occurrence in a fold, the
next existing bucket for a gap slot); local-basis events act on the slot's wall time directly.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from engine.core.errors import EngineFailure

from .common import EVENT_TYPES
from .horizon import LocalGrid
from .kernels import combine_factors, overlay_accumulate

SIG_KEY = ["demand_class", "legal_country_iso", "zone_representation", "sig_merchant"]


@dataclass(frozen=True)
class Signatures:
    table: pl.DataFrame      # SIG_KEY columns, one row per signature, sorted
    row_sig: np.ndarray      # int32[rows]: signature of each profile row
    row_tz: np.ndarray       # int32[rows]: tz index (into LocalGrid.tzids) of each profile row


def signatures(profile: pl.DataFrame, grid: LocalGrid, calendar: pl.DataFrame) -> Signatures:
    named = calendar.filter(pl.col("merchant_id").is_not_null())["merchant_id"].unique()
    rows = profile.select("merchant_id", "demand_class", "legal_country_iso", "zone_representation").with_columns(
        pl.when(pl.col("merchant_id").is_in(named.implode())).then(pl.col("merchant_id"))
        .otherwise(pl.lit(0, pl.UInt64)).alias("sig_merchant"))
    table = rows.select(SIG_KEY).unique().sort(SIG_KEY)
    row_sig = (rows.with_row_index("_r").join(table.with_row_index("_s"), on=SIG_KEY, how="left")
               .sort("_r")["_s"].to_numpy().astype(np.int32))
    return Signatures(table, row_sig, tz_positions(profile["zone_representation"], grid))


def tz_positions(zones: pl.Series, grid: LocalGrid) -> np.ndarray:
    """int32 index of each zone tzid in the grid's sorted tzids."""
    missing = set(zones.unique().to_list()) - set(grid.tzids)
    if missing:
        raise EngineFailure("5A.S4.HORIZON_GRID_INVALID", "zone tzid missing from the local grid",
                            {"tzids": ",".join(sorted(missing)[:10])})
    return zones.replace_strict({z: i for i, z in enumerate(grid.tzids)}, return_dtype=pl.Int32).to_numpy()


def _codes(values: list, vocab: list) -> np.ndarray:
    """-1 for null (no predicate), -2 for a value outside the domain (matches nothing)."""
    pos = {v: i for i, v in enumerate(vocab)}
    return np.array([-1 if v is None else pos.get(v, -2) for v in values], np.int32)


def event_arrays(calendar: pl.DataFrame, sig: Signatures, grid: LocalGrid) -> dict[str, np.ndarray]:
    """The calendar as kernel arrays (codes against the signature vocabularies)."""
    h = grid.horizon
    B = h.bucket_us
    cal = calendar
    local = (cal["time_basis"] == "local").to_numpy()
    s_us, e_us = cal["start_us"].to_numpy(), cal["end_us"].to_numpy()
    # local: absolute wall-clock slots; utc: the UTC buckets the window overlaps (floor start, ceil end)
    start = np.where(local, np.floor_divide(s_us, B), np.floor_divide(s_us - h.start_us, B))
    end = np.where(local, -np.floor_divide(-e_us, B), -np.floor_divide(-(e_us - h.start_us), B))
    t = sig.table
    m = cal["merchant_id"].fill_null(0).to_numpy().astype(np.uint64)
    country = _codes(cal["country_iso"].to_list(), sorted(set(t["legal_country_iso"].to_list())))
    cls = _codes(cal["demand_class"].to_list(), sorted(set(t["demand_class"].to_list())))
    tz = _codes(cal["tzid"].to_list(), list(grid.tzids))
    rank = (8 * (m != 0) + 4 * (tz != -1) + 2 * (country != -1) + (cls != -1)).astype(np.int8)
    return {"ev_type": np.array([EVENT_TYPES.index(x) for x in cal["event_type"].to_list()], np.int32),
            "ev_local": local.astype(np.int8), "ev_start": start.astype(np.int64), "ev_end": end.astype(np.int64),
            "ev_ramp": (cal["shape_kind"] == "ramp").to_numpy().astype(np.int8),
            "ev_amp": cal["amplitude"].to_numpy().astype(np.float64),
            "ev_rin": cal["ramp_in_buckets"].to_numpy().astype(np.int64),
            "ev_rout": cal["ramp_out_buckets"].to_numpy().astype(np.int64),
            "ev_country": country, "ev_tz": tz, "ev_class": cls, "ev_merchant": m, "ev_rank": rank}


def sig_arrays(sig: Signatures, grid: LocalGrid) -> dict[str, np.ndarray]:
    t = sig.table
    return {"sig_country": _codes(t["legal_country_iso"].to_list(), sorted(set(t["legal_country_iso"].to_list()))),
            "sig_tz": tz_positions(t["zone_representation"], grid),
            "sig_class": _codes(t["demand_class"].to_list(), sorted(set(t["demand_class"].to_list()))),
            "sig_merchant": t["sig_merchant"].to_numpy().astype(np.uint64)}


def overlay_factors(calendar: pl.DataFrame, sig: Signatures, grid: LocalGrid, overlay: dict, ordering: dict
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(F float64[n_sig, NL], active uint8[n_sig, NL] bitmask OUTAGE=1 STRESS=2 CAMPAIGN=4 PAYDAY=8 HOLIDAY=16)."""
    n_sig, NL = sig.table.height, grid.width
    # val is written wherever rank becomes >= 0 and read only there: no need to touch all of it
    val = np.empty((len(EVENT_TYPES), n_sig, NL), np.float64)
    rank = np.full((len(EVENT_TYPES), n_sig, NL), -1, np.int8)
    is_min = np.array([ordering["within_type_aggregation"][t]["mode"] == "MIN" for t in EVENT_TYPES], np.bool_)
    if calendar.height and n_sig:
        ev = event_arrays(calendar, sig, grid)
        sa = sig_arrays(sig, grid)
        overlay_accumulate(ev["ev_type"], ev["ev_local"], ev["ev_start"], ev["ev_end"], ev["ev_ramp"], ev["ev_amp"],
                           ev["ev_rin"], ev["ev_rout"], ev["ev_country"], ev["ev_tz"], ev["ev_class"], ev["ev_merchant"],
                           ev["ev_rank"], sa["sig_country"], sa["sig_tz"], sa["sig_class"], sa["sig_merchant"],
                           grid.L0, grid.nL, grid.rep_h, is_min, val, rank)
    rules = ordering["masking_rules"]
    when = np.array([EVENT_TYPES.index(r["when_active"]) for r in rules], np.int64)
    cap = np.zeros((len(rules), len(EVENT_TYPES)), np.bool_)
    for i, r in enumerate(rules):
        cap[i, [EVENT_TYPES.index(t) for t in r["cap_at_one"]]] = True
    comb = overlay["combination"]
    F = np.empty((n_sig, NL), np.float64)
    bits = np.empty((n_sig, NL), np.uint8)
    # masks, then the product in the fixed order OUTAGE, STRESS, CAMPAIGN, PAYDAY, HOLIDAY, then the clamp
    combine_factors(val, rank, when, cap, float(comb["min_factor"]), float(comb["max_factor"]), F, bits)
    if not np.all(np.isfinite(F)):
        raise EngineFailure("5A.S4.OVERLAY_EVAL_FAILED", "overlay factor not finite", {})
    return F, bits
