"""1B numba kernels: integer allocation, site->tile permutation, jitter with point-in-polygon.

Arrays in, arrays out; no I/O. Pair kernels take CSR layouts and one stream per pair.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from engine.core.geometry import point_in_geom
from engine.core.integerise import give_remainder
from engine.core.rng import make_state, next_u01, next_u01_pair


@njit(cache=True)
def allocate_pairs(streams, pair_country, pair_n, ctry_off, weight_fp, k_total, sampled):
    """Integerise each pair's n over its country's tiles (rows of ctry_off, tile_id order).

    Floors z_i = (w_i n) // K are exact; the S = n - Σz remainder units go, in `sampled` mode,
    one uniform each to a tile drawn without replacement in proportion to its residue
    (w_i n) % K, and in lrr mode to the S largest residues (ties: lower tile_id).
    Returns (row_pair, row_tile, row_count, end_states); rows with count 0 are not emitted.
    """
    n_pairs = pair_n.shape[0]
    cap = 0
    for p in range(n_pairs):
        c = pair_country[p]
        cap += min(pair_n[p], ctry_off[c + 1] - ctry_off[c])
    row_pair = np.empty(cap, np.int64)
    row_tile = np.empty(cap, np.int64)
    row_count = np.empty(cap, np.int64)
    end = np.zeros((n_pairs, 5), np.uint64)
    width = 0
    for c in range(ctry_off.shape[0] - 1):
        width = max(width, ctry_off[c + 1] - ctry_off[c])
    z = np.empty(width, np.int64)
    r = np.empty(width, np.int64)
    rank = np.empty(width, np.int32)
    out = 0
    for p in range(n_pairs):
        st = make_state(streams[p, 0], streams[p, 1], streams[p, 2])
        c = pair_country[p]
        lo = ctry_off[c]
        m = ctry_off[c + 1] - lo
        n = pair_n[p]
        total_r = 0
        given = 0
        for i in range(m):
            prod = weight_fp[lo + i] * n
            z[i] = prod // k_total
            r[i] = prod % k_total
            total_r += r[i]
            given += z[i]
        s = n - given
        if sampled:
            for _ in range(s):
                t = np.int64(np.floor(next_u01(st) * total_r))
                acc = 0
                j = m - 1
                for i in range(m):
                    acc += r[i]
                    if acc > t:
                        j = i
                        break
                z[j] += 1
                total_r -= r[j]
                r[j] = 0
        elif s > 0:
            give_remainder(z, r, 0, m, s, rank)
        for i in range(m):
            if z[i] > 0:
                row_pair[out] = p
                row_tile[out] = lo + i
                row_count[out] = z[i]
                out += 1
        end[p] = st
    return row_pair[:out], row_tile[:out], row_count[:out], end


@njit(cache=True)
def assign_sites(streams, pair_off, tile_runs):
    """Per pair: N sites (site_order 1..N) and the tile multiset T (sorted by tile_id,
    one entry per slot, `tile_runs` in CSR by pair_off). One uniform per site; sites sorted
    by (u, site_order) take T's slots in order. Returns tile per site (pair-major, site order)."""
    n_pairs = pair_off.shape[0] - 1
    out = np.empty(pair_off[n_pairs], tile_runs.dtype)
    end = np.zeros((n_pairs, 5), np.uint64)
    for p in range(n_pairs):
        st = make_state(streams[p, 0], streams[p, 1], streams[p, 2])
        lo = pair_off[p]
        n = pair_off[p + 1] - lo
        u = np.empty(n)
        for k in range(n):
            u[k] = next_u01(st)
        perm = np.argsort(u, kind="mergesort")     # stable: equal u keep site_order order
        for j in range(n):
            out[lo + perm[j]] = tile_runs[lo + j]
        end[p] = st
    return out, end


@njit(cache=True)
def jitter_sites(streams, rect, geom_idx, interior, anchor, max_attempts, xs, ys, ring_off, geom_off):
    """Per site: uniform (lon, lat) in its rectangle, one block per attempt (2 draws), until the
    point is in the country (interior tiles accept at once). After max_attempts the anchor
    (tile centroid, or the country's representative point) is used: fallback, no extra draw.
    rect rows: min_lon, max_lon, min_lat, max_lat. Returns lon, lat, attempts, fallback, end."""
    n = streams.shape[0]
    lon = np.empty(n)
    lat = np.empty(n)
    attempts = np.zeros(n, np.int64)
    fallback = np.zeros(n, np.bool_)
    end = np.zeros((n, 5), np.uint64)
    for s in range(n):
        st = make_state(streams[s, 0], streams[s, 1], streams[s, 2])
        ok = False
        for a in range(max_attempts):
            u_lon, u_lat = next_u01_pair(st)
            x = rect[s, 0] + u_lon * (rect[s, 1] - rect[s, 0])
            y = rect[s, 2] + u_lat * (rect[s, 3] - rect[s, 2])
            attempts[s] = a + 1
            if interior[s] or point_in_geom(x, y, geom_idx[s], xs, ys, ring_off, geom_off):
                lon[s] = x
                lat[s] = y
                ok = True
                break
        if not ok:
            lon[s] = anchor[s, 0]
            lat[s] = anchor[s, 1]
            fallback[s] = True
        end[s] = st
    return lon, lat, attempts, fallback, end
