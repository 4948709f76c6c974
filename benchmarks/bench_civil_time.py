"""Civil-time conversion and alias rates on one core.

    python benchmarks/bench_civil_time.py [--n 10000000] [--repeat 5]

Conversions: `n` instants uniform over 2025-01-01..2028-12-31 spread over the first 400 tzids
of zone.tab ∪ zone1970.tab (cache horizon 2024..2029), in random tz order and sorted by tz.
Alias: build of integer Vose tables for 1M slices (K = 1..20 sites, 10.5M slots) and Q0.32 /
edge picks of `n` uniforms over random slices (cache-missing) and over slices in order (5B's
access pattern: arrivals grouped by merchant). Best of `repeat` runs after a warm-up call (compile).
"""
from __future__ import annotations

import os

os.environ["NUMBA_NUM_THREADS"] = "1"          # one core: set before numba is imported

import argparse
import time

import numpy as np

from engine.core import alias as A
from engine.core import civil_time as ct
from engine.core import tzcache
from engine.core.rng import uniforms_at


def best(fn, repeat: int) -> float:
    fn()                                          # warm-up (numba compile / cache load)
    t = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        t.append(time.perf_counter() - t0)
    return min(t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    n = a.n

    t0 = time.perf_counter()
    tzids = tzcache.tab_tzids()[:400]
    table, manifest = tzcache.build_tz_cache(tzids, "2024-01-01", "2029-12-31")
    cache = ct.flatten_cache(table)
    print(f"tz cache: {len(tzids)} tzids, {table.num_rows} rows, built+flattened in "
          f"{time.perf_counter() - t0:.2f} s")

    u = uniforms_at(np.uint64(1), np.uint64(0), np.uint64(0), 2 * n)
    tz = np.minimum((u[:n] * len(tzids)).astype(np.int32), len(tzids) - 1)
    lo, hi = tzcache.to_unix_seconds("2025-01-01") * 10**6, tzcache.to_unix_seconds("2029-01-01") * 10**6
    ts = (lo + u[n:] * (hi - lo)).astype(np.int64)
    order = np.argsort(tz, kind="stable")
    tz_s, ts_s = tz[order], ts[order]
    loc = ct.utc_to_local(ts, tz, cache)
    ny = cache.tzids.index("America/New_York")

    rows = [
        ("utc_to_local, random tz order", n, lambda: ct.utc_to_local(ts, tz, cache)),
        ("utc_to_local, sorted by tz", n, lambda: ct.utc_to_local(ts_s, tz_s, cache)),
        ("utc_to_local, one tz (America/New_York)", n, lambda: ct.utc_to_local(ts, ny, cache)),
        ("local_to_utc FOLD_EARLIEST, random tz order", n, lambda: ct.local_to_utc(loc, tz, cache, 0)),
        ("local_to_utc FOLD_LATEST, random tz order", n, lambda: ct.local_to_utc(loc, tz, cache, 1)),
    ]
    for name, k, fn in rows:
        s = best(fn, a.repeat)
        print(f"{name:48s} {k / s / 1e6:8.1f} M timestamps/s  ({k:,} in {s * 1e3:.0f} ms)")

    # alias: ~1M slices with K ~ 1..20, masses on the 2^24 grid
    rng = np.random.default_rng(5)
    n_sl = 1_000_000
    K = rng.integers(1, 21, n_sl)
    off = np.concatenate([[0], np.cumsum(K)]).astype(np.int64)
    w = rng.exponential(1.0, off[-1]) ** 1.5 + 1e-9
    sl = np.repeat(np.arange(n_sl), K)
    tot = np.bincount(sl, weights=w)
    m = np.floor(w / tot[sl] * (1 << 24)).astype(np.int64)
    short = (1 << 24) - np.bincount(sl, weights=m).astype(np.int64)
    m[off[:-1]] += short                         # grid remainder on each slice's first slot
    s = best(lambda: A.build_alias(off, m), a.repeat)
    print(f"{'alias build (integer Vose, CSR)':48s} {off[-1] / s / 1e6:8.1f} M slots/s  "
          f"({n_sl:,} slices, {off[-1]:,} slots in {s * 1e3:.0f} ms)")
    prob, alias = A.build_alias(off, m)
    pq = A.encode_q32(prob)
    pe = prob.astype(np.uint32)
    slices = np.minimum((u[:n] * n_sl).astype(np.int64), n_sl - 1)
    sorted_sl = np.sort(slices)                  # 5B's order: arrivals grouped by merchant
    for name, fn in [("alias pick Q0.32, random slices", lambda: A.pick_q32_many(u[n:], slices, off, pq, alias)),
                     ("alias pick Q0.32, slices in order", lambda: A.pick_q32_many(u[n:], sorted_sl, off, pq, alias)),
                     ("edge pick Q0.24, random slices", lambda: A.edge_pick_many(u[n:], slices, off, pe, alias)),
                     ("edge pick Q0.24, slices in order", lambda: A.edge_pick_many(u[n:], sorted_sl, off, pe, alias))]:
        s = best(fn, a.repeat)
        print(f"{name:48s} {n / s / 1e6:8.1f} M picks/s  ({n:,} in {s * 1e3:.0f} ms)")


if __name__ == "__main__":
    main()
