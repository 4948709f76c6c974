"""3B numba kernels: country mix per merchant, edge counts (LRR), tile choice and jitter. No I/O.

Scalar libm calls only (math.*), so published values do not depend on the CPU's vector features.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from engine.core.geometry import point_in_geom
from engine.core.integerise import give_remainder
from engine.core.rng import make_state, next_u01, next_u01_pair

EARTH_KM = 6371.0088
_DEG = math.pi / 180.0


@njit(cache=True)
def great_circle_km(lat1, lon1, lat2, lon2):
    p1 = lat1 * _DEG
    p2 = lat2 * _DEG
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin((lon2 - lon1) * _DEG / 2) ** 2
    return 2.0 * EARTH_KM * math.asin(min(1.0, math.sqrt(a)))


@njit(cache=True)
def great_circle_many(lat, lon, lat2, lon2):
    out = np.empty(lat.shape[0])
    for i in range(lat.shape[0]):
        out[i] = great_circle_km(lat[i], lon[i], lat2[i], lon2[i])
    return out


@njit(cache=True)
def weighted_centroids(c_off, lat, lon, w):
    """Per country: the weight-averaged unit vector of its tile centres, back to (lat, lon) degrees
    (a plain mean of longitudes fails across the antimeridian)."""
    n = c_off.shape[0] - 1
    out = np.empty((n, 2))
    for c in range(n):
        x = y = z = 0.0
        for i in range(c_off[c], c_off[c + 1]):
            p = lat[i] * _DEG
            q = lon[i] * _DEG
            x += w[i] * math.cos(p) * math.cos(q)
            y += w[i] * math.cos(p) * math.sin(q)
            z += w[i] * math.sin(p)
        out[c, 0] = math.atan2(z, math.sqrt(x * x + y * y)) / _DEG
        out[c, 1] = math.atan2(y, x) / _DEG
    return out


@njit(cache=True)
def country_mix(s_lat, s_lon, s_idx, n_edges, gamma, kappa, floor_, cap, w, cen, decay_km, dp):
    """Per merchant: p(c) over countries (weights^γ x locality, settlement clamped), E_m(c) by the
    largest-remainder law (ties to the lower country index), then the settlement guarantee.

    Returns CSR over merchants of the countries with E_m(c) > 0: (off, country, count, p)."""
    n = s_lat.shape[0]
    nc = w.shape[0]
    cap_rows = 0
    for i in range(n):
        cap_rows += n_edges[i]
    off = np.zeros(n + 1, np.int64)
    r_c = np.empty(cap_rows, np.int64)
    r_n = np.empty(cap_rows, np.int64)
    r_p = np.empty(cap_rows)
    p = np.empty(nc)
    lvec = np.empty(nc)
    cnt = np.zeros(nc, np.int64)
    res = np.zeros(nc)
    rank = np.zeros(nc, np.int32)
    out = 0
    for i in range(n):
        lmax = 0.0
        for c in range(nc):
            lvec[c] = math.exp(-great_circle_km(s_lat[i], s_lon[i], cen[c, 0], cen[c, 1]) / decay_km)
            lmax = max(lmax, lvec[c])
        tot = 0.0
        for c in range(nc):
            wc = math.pow(w[c], gamma[i]) if w[c] > 0.0 else 0.0
            p[c] = wc * ((1.0 - kappa[i]) + kappa[i] * lvec[c] / lmax)
            tot += p[c]
        for c in range(nc):
            p[c] = p[c] / tot
        s = s_idx[i]
        if s >= 0:
            ps = min(max(p[s], floor_[i]), cap[i])
            rest = 1.0 - p[s]
            for c in range(nc):
                if c == s:
                    continue
                p[c] = p[c] * (1.0 - ps) / rest if rest > 0.0 else 0.0
            p[s] = ps if rest > 0.0 else 1.0
        e = n_edges[i]
        given = 0
        for c in range(nc):
            a = e * p[c]
            b = math.floor(a)
            r = np.round(a - b, dp)
            cnt[c] = np.int64(b)
            res[c] = r if r < 1.0 else 0.0
            given += cnt[c]
        give_remainder(cnt, res, 0, nc, e - given, rank)
        if s >= 0 and cnt[s] == 0:
            donor = -1
            for c in range(nc):
                if c != s and (donor < 0 or cnt[c] >= cnt[donor]):
                    donor = c
            cnt[donor] -= 1
            cnt[s] = 1
        for c in range(nc):
            if cnt[c] > 0:
                r_c[out] = c
                r_n[out] = cnt[c]
                r_p[out] = p[c]
                out += 1
        off[i + 1] = out
    return off, r_c[:out], r_n[:out], r_p[:out]


@njit(cache=True)
def place_edges(tile_st, jit_st, m_off, r_c, r_n, t_off, t_cum, rect, interior, geom_idx, anchor, max_attempts,
                xs, ys, ring_off, geom_off):
    """Per merchant (streams tile_st/jit_st), countries ascending, slots k = 0..E(c)-1: a tile by inverse CDF
    over the country's cumulative weights (one uniform), then a point in the tile (one block per attempt)
    accepted at once in interior tiles, else when inside the country geometry; after max_attempts the
    tile anchor, flagged. Returns per edge: tile row, lon, lat, attempts, fallback; end states."""
    n = m_off.shape[0] - 1
    n_e = 0
    for j in range(r_n.shape[0]):
        n_e += r_n[j]
    tile = np.empty(n_e, np.int64)
    lon = np.empty(n_e)
    lat = np.empty(n_e)
    att = np.zeros(n_e, np.int64)
    fb = np.zeros(n_e, np.bool_)
    end_t = np.zeros((n, 5), np.uint64)
    end_j = np.zeros((n, 5), np.uint64)
    e = 0
    for i in range(n):
        st = make_state(tile_st[i, 0], tile_st[i, 1], tile_st[i, 2])
        sj = make_state(jit_st[i, 0], jit_st[i, 1], jit_st[i, 2])
        for j in range(m_off[i], m_off[i + 1]):
            c = r_c[j]
            lo, hi = t_off[c], t_off[c + 1]
            total = t_cum[hi - 1]
            for _ in range(r_n[j]):
                x = next_u01(st) * total
                k = lo + np.searchsorted(t_cum[lo:hi], x, side="right")
                if k >= hi:
                    k = hi - 1
                tile[e] = k
                ok = False
                for a in range(max_attempts):
                    u1, u2 = next_u01_pair(sj)
                    px = rect[k, 0] + u1 * (rect[k, 1] - rect[k, 0])
                    py = rect[k, 2] + u2 * (rect[k, 3] - rect[k, 2])
                    att[e] = a + 1
                    if interior[k] or point_in_geom(px, py, geom_idx[k], xs, ys, ring_off, geom_off):
                        lon[e] = px
                        lat[e] = py
                        ok = True
                        break
                if not ok:
                    lon[e] = anchor[k, 0]
                    lat[e] = anchor[k, 1]
                    fb[e] = True
                e += 1
        end_t[i] = st
        end_j[i] = sj
    return tile, lon, lat, att, fb, end_t, end_j


@njit(cache=True)
def edge_messages(m_data, m_off, edge_m, seq):
    """Bytes `str(m) 0x1F LE32(seq)` per edge (the "3B.EDGE" 0x1F prefix is hashed once) -> (data, offsets)."""
    n = edge_m.shape[0]
    off = np.zeros(n + 1, np.int64)
    for i in range(n):
        off[i + 1] = off[i] + (m_off[edge_m[i] + 1] - m_off[edge_m[i]]) + 5
    data = np.empty(off[n], np.uint8)
    for i in range(n):
        p = off[i]
        for j in range(m_off[edge_m[i]], m_off[edge_m[i] + 1]):
            data[p] = m_data[j]
            p += 1
        data[p] = 0x1F
        v = seq[i]
        for b in range(4):
            data[p + 1 + b] = (v >> (8 * b)) & 0xFF
    return data, off
