"""The civil-time law, once: UTC <-> local wall clock over the 2A tz transition cache.

Law (chapter 2A.S3 library; INTERFACES 2A.S3 row)
------------------------------------------------
Timestamps are int64 microseconds since 1970-01-01 (UTC instants, or naive local wall-clock
readings). A tz is addressed by ``tz_index`` = its position among the cache's tzids in ASCII
order. Per tz, transition ``i`` takes effect at UTC instant ``T_i`` with offset ``o_i``
(row 0: ``T_0 = INT64_MIN``, the offset in force at the horizon start).

- ``utc_to_local(u) = u + o_k`` with ``k`` the last row with ``T_k <= u``.
- ``local_to_utc(L) = L - o_k`` where, per transition ``i`` with previous offset ``o_b`` and
  new offset ``o_a``, the transition counts as passed for local time L when
  ``L >= T_i + o_a`` (``FOLD_LATEST``) or ``L >= T_i + max(o_b, o_a)`` (``FOLD_EARLIEST``).
  Consequences: in a **gap** (``o_a > o_b``; local times ``[T_i+o_b, T_i+o_a)`` never occur)
  both rules use ``o_b``, i.e. the time shifts **forward by the gap**; in a **fold**
  (``o_a < o_b``; local times ``[T_i+o_a, T_i+o_b)`` occur twice) ``FOLD_EARLIEST`` takes the
  first (earlier-UTC) occurrence, the chapter's default, and ``FOLD_LATEST`` the second.
  ``FOLD_EARLIEST`` is exactly stdlib zoneinfo with ``fold=0`` (PEP 495); ``FOLD_LATEST``
  is zoneinfo ``fold=1`` except in gaps, where the chapter's forward shift wins.

Both "wall" thresholds are precomputed per row (``wall_early_us``, ``wall_late_us``), so each
conversion is one binary search over the tz's rows. The scalar ``@njit`` functions take the
flat arrays explicitly so other numba kernels (5B per arrival) can call them; the array
wrappers take a `CivilTimeCache`. Results are valid only inside the cache's horizon
(`engine.core.tzcache.check_coverage` guards that).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from .errors import EngineFailure

__all__ = ["FOLD_EARLIEST", "FOLD_LATEST", "CivilTimeCache", "flatten_cache",
           "utc_to_local_scalar", "local_to_utc_scalar", "offset_us_scalar",
           "utc_to_local", "local_to_utc", "utc_offset_minutes"]

FOLD_EARLIEST = 0
FOLD_LATEST = 1
_I64_MIN = np.iinfo(np.int64).min
_US = 1_000_000


@dataclass(frozen=True)
class CivilTimeCache:
    """The cache flattened per tz_index: rows tz_start[i]..tz_start[i+1] belong to tzids[i]."""
    tzids: tuple[str, ...]
    tz_start: np.ndarray       # int64[n_tz + 1]
    trans_us: np.ndarray       # int64[N]; row 0 of each tz = INT64_MIN
    offset_us: np.ndarray      # int64[N]
    wall_early_us: np.ndarray  # int64[N]; T + max(o_before, o_after); INT64_MIN on row 0
    wall_late_us: np.ndarray   # int64[N]; T + o_after; INT64_MIN on row 0

    def tz_index(self, tzids, code: str = "CORE.CIVIL_TIME.TZID_NOT_IN_CACHE") -> np.ndarray:
        """int32 tz_index for each tzid (str sequence or Arrow array); unknown -> EngineFailure."""
        arr = tzids if isinstance(tzids, (pa.Array, pa.ChunkedArray)) else pa.array(list(tzids), pa.string())
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        if isinstance(arr.type, pa.DictionaryType):
            arr = arr.cast(pa.string())
        idx = pc.index_in(arr, value_set=pa.array(self.tzids, pa.string()))
        if idx.null_count:
            bad = pc.filter(arr, pc.is_null(idx)).unique().to_pylist()
            raise EngineFailure(code, "tzid not in the tz cache", {"tzids": ",".join(map(str, bad[:10]))})
        return idx.to_numpy(zero_copy_only=False).astype(np.int32)


def flatten_cache(table: pa.Table, code_prefix: str = "CORE.CIVIL_TIME") -> CivilTimeCache:
    """Flatten a `tz_timetable_cache` table (tzid, transition_utc s, offset_min), any row order."""
    tz = table.column("tzid").combine_chunks()
    if isinstance(tz.type, pa.DictionaryType):
        tz = tz.cast(pa.string())
    t = table.column("transition_utc").to_numpy().astype(np.int64)
    o = table.column("offset_min").to_numpy().astype(np.int64)
    names = sorted(set(tz.to_pylist()), key=lambda s: s.encode())
    code = pc.index_in(tz, value_set=pa.array(names, pa.string())).to_numpy().astype(np.int64)
    order = np.lexsort((t, code))
    code, t, o = code[order], t[order], o[order]
    tz_start = np.searchsorted(code, np.arange(len(names) + 1)).astype(np.int64)
    first = np.zeros(len(t), bool)
    first[tz_start[:-1]] = True
    if np.any(t[first] != _I64_MIN) or np.any(t[~first] == _I64_MIN):
        raise EngineFailure(f"{code_prefix}.CACHE_INVALID", "each tzid needs exactly one INT64_MIN sentinel row", {})
    later = ~first[1:]
    if np.any(t[1:][later] <= t[:-1][later]):
        raise EngineFailure(f"{code_prefix}.CACHE_INVALID", "transitions not strictly increasing", {})
    off_us = o * (60 * _US)
    t_us = np.where(first, 0, t) * _US                 # sentinel rows zeroed: no wrap-around
    prev = np.concatenate([[0], off_us[:-1]])
    trans_us = np.where(first, _I64_MIN, t_us)
    early = np.where(first, _I64_MIN, t_us + np.maximum(prev, off_us))
    late = np.where(first, _I64_MIN, t_us + off_us)
    # the local-time search needs ascending walls: transitions farther apart than offset swings
    for w in (early, late):
        if np.any(w[1:][later] <= w[:-1][later]):
            raise EngineFailure(f"{code_prefix}.CACHE_INVALID", "transitions closer than their offset change", {})
    return CivilTimeCache(tuple(names), tz_start, trans_us, off_us, early, late)


# --------------------------------------------------------------------------- scalar kernels
@njit(cache=True, inline="always")
def _last_le(keys, lo, hi, x):
    """Largest k in [lo, hi) with keys[k] <= x (keys[lo] = INT64_MIN, so k >= lo)."""
    a = lo + 1
    b = hi
    while a < b:                       # invariant: keys[a-1] <= x, keys[b..hi) > x
        m = (a + b) >> 1
        if keys[m] <= x:
            a = m + 1
        else:
            b = m
    return a - 1


@njit(cache=True)
def offset_us_scalar(ts_utc_us, tz_index, tz_start, trans_us, offset_us):
    """UTC offset (µs) in force at UTC instant `ts_utc_us` in tz `tz_index`."""
    k = _last_le(trans_us, tz_start[tz_index], tz_start[tz_index + 1], ts_utc_us)
    return offset_us[k]


@njit(cache=True)
def utc_to_local_scalar(ts_utc_us, tz_index, tz_start, trans_us, offset_us):
    """Local wall clock (µs) of UTC instant `ts_utc_us` in tz `tz_index`."""
    k = _last_le(trans_us, tz_start[tz_index], tz_start[tz_index + 1], ts_utc_us)
    return ts_utc_us + offset_us[k]


@njit(cache=True)
def local_to_utc_scalar(ts_local_us, tz_index, fold_rule, tz_start, wall_early_us, wall_late_us, offset_us):
    """UTC instant (µs) of local wall clock `ts_local_us`; gaps shift forward, folds per rule."""
    walls = wall_late_us if fold_rule == 1 else wall_early_us
    k = _last_le(walls, tz_start[tz_index], tz_start[tz_index + 1], ts_local_us)
    return ts_local_us - offset_us[k]


# --------------------------------------------------------------------------- array kernels
@njit(cache=True)
def _utc_to_local_arr(ts, tzi, tz_start, trans_us, offset_us, out):
    for i in range(ts.shape[0]):
        out[i] = utc_to_local_scalar(ts[i], tzi[i], tz_start, trans_us, offset_us)


@njit(cache=True)
def _utc_to_local_one_tz(ts, tz, tz_start, trans_us, offset_us, out):
    lo = tz_start[tz]
    hi = tz_start[tz + 1]
    for i in range(ts.shape[0]):
        out[i] = ts[i] + offset_us[_last_le(trans_us, lo, hi, ts[i])]


@njit(cache=True)
def _local_to_utc_arr(ts, tzi, fold_rule, tz_start, early, late, offset_us, out):
    walls = late if fold_rule == 1 else early
    for i in range(ts.shape[0]):
        tz = tzi[i]
        out[i] = ts[i] - offset_us[_last_le(walls, tz_start[tz], tz_start[tz + 1], ts[i])]


@njit(cache=True)
def _local_to_utc_one_tz(ts, tz, fold_rule, tz_start, early, late, offset_us, out):
    walls = late if fold_rule == 1 else early
    lo = tz_start[tz]
    hi = tz_start[tz + 1]
    for i in range(ts.shape[0]):
        out[i] = ts[i] - offset_us[_last_le(walls, lo, hi, ts[i])]


@njit(cache=True)
def _offset_min_arr(ts, tzi, tz_start, trans_us, offset_us, out):
    for i in range(ts.shape[0]):
        out[i] = offset_us_scalar(ts[i], tzi[i], tz_start, trans_us, offset_us) // 60_000_000


def _prep(ts, tz_index, cache: CivilTimeCache):
    ts = np.ascontiguousarray(ts, dtype=np.int64)
    if np.ndim(tz_index) == 0:
        tz = int(tz_index)
        if not 0 <= tz < len(cache.tzids):
            raise IndexError(f"tz_index {tz} outside 0..{len(cache.tzids) - 1}")
        return ts, tz
    tzi = np.ascontiguousarray(tz_index, dtype=np.int32)
    if tzi.shape != ts.shape:
        raise ValueError("ts and tz_index differ in shape")
    if tzi.size and (tzi.min() < 0 or tzi.max() >= len(cache.tzids)):
        raise IndexError("tz_index outside the cache")
    return ts, tzi


def utc_to_local(ts_utc_us, tz_index, cache: CivilTimeCache) -> np.ndarray:
    """int64 local µs for each UTC µs; `tz_index` is one int or an array like `ts_utc_us`."""
    ts, tz = _prep(ts_utc_us, tz_index, cache)
    out = np.empty_like(ts)
    if isinstance(tz, int):
        _utc_to_local_one_tz(ts, tz, cache.tz_start, cache.trans_us, cache.offset_us, out)
    else:
        _utc_to_local_arr(ts, tz, cache.tz_start, cache.trans_us, cache.offset_us, out)
    return out


def local_to_utc(ts_local_us, tz_index, cache: CivilTimeCache, fold_rule: int = FOLD_EARLIEST) -> np.ndarray:
    """int64 UTC µs for each local µs (gap: forward by the gap; fold: per `fold_rule`)."""
    if fold_rule not in (FOLD_EARLIEST, FOLD_LATEST):
        raise ValueError("fold_rule must be FOLD_EARLIEST (0) or FOLD_LATEST (1)")
    ts, tz = _prep(ts_local_us, tz_index, cache)
    out = np.empty_like(ts)
    args = (cache.tz_start, cache.wall_early_us, cache.wall_late_us, cache.offset_us, out)
    if isinstance(tz, int):
        _local_to_utc_one_tz(ts, tz, fold_rule, *args)
    else:
        _local_to_utc_arr(ts, tz, fold_rule, *args)
    return out


def utc_offset_minutes(ts_utc_us, tz_index, cache: CivilTimeCache) -> np.ndarray:
    """int64 offset (minutes) in force at each UTC instant."""
    ts, tz = _prep(ts_utc_us, tz_index, cache)
    tzi = np.full(ts.shape, tz, np.int32) if isinstance(tz, int) else tz
    out = np.empty_like(ts)
    _offset_min_arr(ts, tzi, cache.tz_start, cache.trans_us, cache.offset_us, out)
    return out
