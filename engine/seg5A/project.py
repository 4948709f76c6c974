"""5A.S4 composition: scenario intensities on local slots, projected onto the UTC bucket grid, streamed.

λ_local[r, L] = frac · λ_base[r, k(L)] · F[sig(r), L]; λ_utc[r, h] = Σ over the CSR entries (L, w) of
(tz(r), h) of w · λ_local[r, L] (see horizon.py for the gap/fold rule). Rows are produced in merchant blocks
of ≈ `chunk_rows` merchant-zones (never splitting a merchant; 500 × 2,160 buckets ≈ one 1M-row row group on
full), each an Arrow table in primary-key order (merchant_id, zone_representation, utc_horizon_bucket_index),
so the full preset (~1e8 rows) streams through `engine.core.publish.DatasetWriter` with memory bounded by one
block.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import pyarrow as pa

from engine.core.errors import EngineFailure

from .common import CHANNEL_GROUPS
from .horizon import DAY_US, LocalGrid
from .kernels import checked_max, compose_local, compose_utc
from .overlay import Signatures

UTC_SCHEMA = pa.schema([
    ("merchant_id", pa.uint64()),
    ("zone_representation", pa.dictionary(pa.int32(), pa.string())),
    ("channel_group", pa.dictionary(pa.int32(), pa.string())),
    ("utc_horizon_bucket_index", pa.int32()),
    ("lambda_utc_scenario", pa.float64()),
])
LOCAL_SCHEMA = pa.schema([
    ("merchant_id", pa.uint64()),
    ("zone_representation", pa.dictionary(pa.int32(), pa.string())),
    ("channel_group", pa.dictionary(pa.int32(), pa.string())),
    ("local_horizon_bucket_index", pa.int32()),
    ("local_bucket_start", pa.timestamp("us")),
    ("lambda_local_scenario", pa.float64()),
])


@dataclass
class StreamStats:
    """Filled while a generator runs: rows, chunk totals (combined with fsum in chunk order), max λ."""
    rows: int = 0
    chunks: int = 0
    chunk_sums: list = field(default_factory=list)
    max_lambda: float = 0.0

    @property
    def total(self) -> float:
        return math.fsum(self.chunk_sums)


def merchant_blocks(merchant_id: np.ndarray, chunk_rows: int) -> list[tuple[int, int]]:
    """[r0, r1) row ranges of ≈ chunk_rows rows that never split a merchant (rows sorted by merchant)."""
    n = len(merchant_id)
    if n == 0:
        return []
    starts = np.flatnonzero(np.r_[True, merchant_id[1:] != merchant_id[:-1]])
    cut = starts[np.r_[True, np.diff(starts // max(1, chunk_rows)) > 0]]
    bounds = np.r_[cut, n]
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def _dict_col(codes: np.ndarray, vocab) -> pa.DictionaryArray:
    d = vocab if isinstance(vocab, pa.Array) else pa.array(list(vocab), pa.string())
    return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32, copy=False)), d, safe=False)  # codes < len(d)


def _row_cg(profile: pl.DataFrame) -> np.ndarray:
    return profile["channel_group"].replace_strict({c: i for i, c in enumerate(CHANNEL_GROUPS)},
                                                   return_dtype=pl.Int32).to_numpy()


def _check(lam: np.ndarray, r0: int, profile: pl.DataFrame) -> None:
    if lam.size and not (np.isfinite(lam).all() and lam.min() >= 0.0):
        raise EngineFailure("5A.S4.INTENSITY_NUMERIC_INVALID", "λ negative or non-finite",
                            {"merchant_id": int(profile["merchant_id"][r0])})


def utc_chunks(profile: pl.DataFrame, base: np.ndarray, grid: LocalGrid, sig: Signatures, F: np.ndarray,
               chunk_rows: int = 500, stats: StreamStats | None = None,
               rows: tuple[int, int] | None = None) -> Iterator[pa.Table]:
    """`merchant_zone_scenario_utc_5A` as Arrow tables, one per merchant block, in primary-key order.

    `rows` = [a, b): only those profile rows (a merchant shard). Blocks stay those of the whole
    profile and a block's sum goes to `stats` from the shard holding its first row (a block cut by
    the shard edge is composed whole there), so the shards' chunk sums are the one job's, in order."""
    H = grid.horizon.n_buckets
    mid = profile["merchant_id"].to_numpy().astype(np.uint64)
    cg = _row_cg(profile).astype(np.int32)
    base = np.ascontiguousarray(base, np.float64)
    tz_vocab, cg_vocab = pa.array(list(grid.tzids), pa.string()), pa.array(list(CHANNEL_GROUPS), pa.string())
    a, b = (0, len(mid)) if rows is None else rows
    for r0, r1 in merchant_blocks(mid, chunk_rows):
        if r1 <= a or r0 >= b:
            continue
        n = r1 - r0
        lam = np.empty(n * H, np.float64)
        o_mid, o_h = np.empty(n * H, np.uint64), np.empty(n * H, np.int32)
        o_tz, o_cg = np.empty(n * H, np.int32), np.empty(n * H, np.int32)
        compose_utc(base[r0:r1], sig.row_tz[r0:r1], sig.row_sig[r0:r1], mid[r0:r1], cg[r0:r1], grid.ptr, grid.cL,
                    grid.cw, grid.k, F, grid.frac, H, lam, o_mid, o_tz, o_cg, o_h)
        top = checked_max(lam)
        if top < 0.0:
            _check(lam, r0, profile)
        lo, hi = (max(r0, a) - r0) * H, (min(r1, b) - r0) * H          # this shard's rows of the block
        if stats is not None:
            stats.rows += hi - lo
            if r0 >= a:
                stats.chunks += 1
                stats.chunk_sums.append(float(np.sum(lam)))
            stats.max_lambda = max(stats.max_lambda, top if hi - lo == lam.size else checked_max(lam[lo:hi]))
        t = pa.Table.from_arrays([pa.array(o_mid), _dict_col(o_tz, tz_vocab), _dict_col(o_cg, cg_vocab),
                                  pa.array(o_h), pa.array(lam)], schema=UTC_SCHEMA)
        yield t if hi - lo == lam.size else t.slice(lo, hi - lo)


def local_chunks(profile: pl.DataFrame, base: np.ndarray, grid: LocalGrid, sig: Signatures, F: np.ndarray,
                 chunk_rows: int = 500, stats: StreamStats | None = None) -> Iterator[pa.Table]:
    """`merchant_zone_scenario_local_5A`: every local slot of the zone inside the horizon, in slot order
    (local_horizon_bucket_index = slot - first slot; local_bucket_start = its wall-clock start)."""
    W = grid.width
    B = grid.horizon.bucket_us
    mid = profile["merchant_id"].to_numpy().astype(np.uint64)
    cg = _row_cg(profile)
    base = np.ascontiguousarray(base, np.float64)
    for r0, r1 in merchant_blocks(mid, chunk_rows):
        n = r1 - r0
        lam = np.empty(n * W, np.float64)
        tz = sig.row_tz[r0:r1]
        compose_local(base[r0:r1], tz, sig.row_sig[r0:r1], grid.nL, grid.k, F, grid.frac, W, lam)
        keep = (np.arange(W)[None, :] < grid.nL[tz][:, None]).reshape(-1)
        lam = lam[keep]
        _check(lam, r0, profile)
        if stats is not None:
            stats.rows += lam.size
            stats.chunks += 1
            stats.chunk_sums.append(float(np.sum(lam)))
        L = np.tile(np.arange(W, dtype=np.int64), n)[keep]
        rows_tz = np.repeat(tz, W)[keep]
        yield pa.Table.from_arrays([
            pa.array(np.repeat(mid[r0:r1], W)[keep]),
            _dict_col(rows_tz, grid.tzids),
            _dict_col(np.repeat(cg[r0:r1], W)[keep], CHANNEL_GROUPS),
            pa.array(L.astype(np.int32)),
            pa.array((grid.L0[rows_tz] + L) * B, pa.int64()).cast(pa.timestamp("us")),
            pa.array(lam)], schema=LOCAL_SCHEMA)


def prefetched(chunks: Iterator[pa.Table], depth: int = 2) -> Iterator[pa.Table]:
    """Run a chunk generator `depth` chunks ahead in a background thread, so that the next block is composed
    (numba, GIL released) while the writer encodes this one (pyarrow, GIL released). Order and content are
    unchanged; an exception in the producer is re-raised here. Memory: `depth` + 1 blocks."""
    import queue
    import threading
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    done = object()
    stop = threading.Event()

    def produce():
        try:
            for c in chunks:
                while not stop.is_set():
                    try:
                        q.put(c, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(done)
        except BaseException as exc:          # handed to the consumer
            q.put(exc)
    th = threading.Thread(target=produce, name="5A.S4.compose", daemon=True)
    th.start()
    try:
        while True:
            item = q.get()
            if item is done:
                break
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        th.join()


def local_day_masses(lam_local: np.ndarray, grid: LocalGrid, t: int) -> dict[int, float]:
    """Σ λ_local per local date (days since 1970) for one row of tz t (tests and validation)."""
    days = grid.day[t, :grid.nL[t]]
    return {int(d): float(np.sum(lam_local[days == d])) for d in np.unique(days)}


__all__ = ["UTC_SCHEMA", "LOCAL_SCHEMA", "StreamStats", "merchant_blocks", "utc_chunks", "local_chunks", "prefetched",
           "local_day_masses", "DAY_US"]
