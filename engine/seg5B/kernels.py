"""5B numba kernels: latent field (S2), bucket counts (S3), arrival expansion (S4), the arrival
audit (S5). Arrays in, arrays out; no I/O, no Polars, no logging.

RNG addressing (DESIGN §5 "hash once per coarse key, event k uses counter + k"; INTERFACES §4):
S3 and the three S4 families hash one stream per (merchant, zone, channel) and address the row
of bucket b at ``counter + (b << 32)``; S4 arrival k of that row uses ``counter + (b << 32) + k``
(k < 2^32 because a bucket holds at most `max_count_per_bucket` <= 4e6 arrivals). Distinct rows
therefore never share a block, and a 128-bit wrap of the counter is a named failure.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from engine.core.alias import alias_pick_q32, edge_pick
from engine.core.civil_time import utc_to_local_scalar
from engine.core.rng import add_counter, make_state, philox2x64_10, u01
from engine.core.samplers import std_normal
from engine.seg2B.kernels import ndtri  # AS241 Φ⁻¹, the one fixed-coefficient implementation

SHIFT = np.uint64(32)
MODE_NON_VIRTUAL, MODE_HYBRID, MODE_VIRTUAL_ONLY = 0, 1, 2
_SMALL_SORT = 48


@njit(cache=True, inline="always")
def row_counter(hi, lo, b, k):
    """(hi, lo) + (b << 32) + k; wrapped = the 128-bit add overflowed."""
    off = (np.uint64(b) << SHIFT) + np.uint64(k)
    h, lo2 = add_counter(hi, lo, off)
    return h, lo2, h < np.uint64(hi)


# ---------------------------------------------------------------- S2 latent field

@njit(cache=True)
def latent_field(streams, sigma, phi, H, iid, fmin, fmax, f, ends):
    """Per group g (row of `streams`): H standard normals by Box-Muller (one block each, cosine
    branch), OU/AR(1) (or iid) series Z with stationary sd sigma[g], factor
    f[g, t] = clip(exp(Z_t - sigma²/2), fmin, fmax). `ends` (G, 5) receives the stream states."""
    for g in range(streams.shape[0]):
        st = make_state(streams[g, 0], streams[g, 1], streams[g, 2])
        s = sigma[g]
        p = phi[g]
        innov = s * math.sqrt(1.0 - p * p)
        half_var = 0.5 * s * s
        z = 0.0
        for t in range(H):
            e = std_normal(st)
            if iid or t == 0:
                z = s * e
            else:
                z = p * z + innov * e
            v = math.exp(z - half_var)
            f[g, t] = min(max(v, fmin), fmax)
        ends[g, :] = st


# ---------------------------------------------------------------- S3 counts

@njit(cache=True, inline="always")
def poisson_one(r, u, exact_max, n_cap):
    """Poisson(r) from one uniform: CDF inversion up to `exact_max`, else the rounded normal
    approximation floor(r + sqrt(r)·Φ⁻¹(u) + 0.5). float64 (the caller clamps)."""
    if r <= exact_max:
        n = 0
        p = math.exp(-r)
        c = p
        while c < u and n < n_cap:
            n += 1
            p *= r / n
            c += p
        return np.float64(n)
    return math.floor(r + math.sqrt(r) * ndtri(u) + 0.5)


@njit(cache=True, parallel=True)
def bucket_counts(keys, row_c, row_b, mu, kappa, nb2, eps, max_count, exact_max, n_cap, count, capped, wrapped):
    """One block per row with mu > eps at counter(row_c's stream) + (b << 32): Poisson on lane 0,
    or NB2 = Poisson(log-normal Λ with Var ≈ mu + mu²/kappa) on lanes 0 (Λ) and 1 (N).
    Rows are independent (own counter), so they run in parallel; `wrapped[i]` flags a row whose
    counter overflowed (the caller fails)."""
    for i in prange(mu.shape[0]):
        m = mu[i]
        count[i] = 0
        capped[i] = False
        wrapped[i] = False
        if not m > eps:
            continue
        c = row_c[i]
        h, lo_, wr = row_counter(keys[c, 1], keys[c, 2], row_b[i], 0)
        if wr:
            wrapped[i] = True
            continue
        x0, x1 = philox2x64_10(h, lo_, keys[c, 0])
        u1 = u01(x0)
        if nb2:
            s2 = math.log(1.0 + 1.0 / kappa[c])
            lam = math.exp(math.log(m) - 0.5 * s2 + math.sqrt(s2) * ndtri(u1))
            n = poisson_one(lam, u01(x1), exact_max, n_cap)
        else:
            n = poisson_one(m, u1, exact_max, n_cap)
        v = min(max(n, 0.0), np.float64(max_count))
        count[i] = np.int32(v)
        capped[i] = v != n


# ---------------------------------------------------------------- S4 expansion

@njit(cache=True, nogil=True)
def batch_order(row_m, row_b, n_buckets):
    """Permutation of rows sorted by (merchant, bucket), stable (rows come merchant-contiguous and
    sorted by (c, b), so ties keep c order): a counting sort on b within each merchant run."""
    n = row_m.shape[0]
    order = np.empty(n, np.int64)
    cnt = np.zeros(n_buckets + 1, np.int64)
    s = 0
    while s < n:
        e = s + 1
        while e < n and row_m[e] == row_m[s]:
            e += 1
        cnt[:] = 0
        for i in range(s, e):
            cnt[row_b[i] + 1] += 1
        for j in range(n_buckets):
            cnt[j + 1] += cnt[j]
        for i in range(s, e):
            order[s + cnt[row_b[i]]] = i
            cnt[row_b[i]] += 1
        s = e
    return order


@njit(cache=True, inline="always")
def _swap(a, i, j):
    t = a[i]
    a[i] = a[j]
    a[j] = t


@njit(cache=True)
def _sort_group(ts, rowl, kk, lo, hi):
    """Stable sort of positions lo..hi by ts (generation order breaks ties), in place."""
    n = hi - lo
    if n <= _SMALL_SORT:
        for i in range(lo + 1, hi):
            j = i
            while j > lo and ts[j - 1] > ts[j]:
                _swap(ts, j - 1, j)
                _swap(rowl, j - 1, j)
                _swap(kk, j - 1, j)
                j -= 1
        return
    order = np.argsort(ts[lo:hi], kind="mergesort")
    t2 = ts[lo:hi].copy()
    r2 = rowl[lo:hi].copy()
    k2 = kk[lo:hi].copy()
    for j in range(n):
        ts[lo + j] = t2[order[j]]
        rowl[lo + j] = r2[order[j]]
        kk[lo + j] = k2[order[j]]


@njit(cache=True)
def _expand_groups(g0, g1, grp_row_off, grp_out_off, grp_seq0, row_c, row_b, row_n, row_lam,
                  k_time, k_site, k_edge, c_mid, c_zone, c_chan, c_m, c_slice, c_fallback,
                  m_mode, m_edge_lo, m_edge_n, m_settle_tz,
                  sl_off, sl_prob_q, sl_alias, slot_site_id, slot_tz,
                  e_prob_q, e_alias, e_id, e_tz,
                  tz_start, trans_us, offset_us, h0_us, d_us, p_hybrid,
                  o_ts, o_seq, o_row, o_mid, o_zone, o_chan, o_b, o_lam, o_virt, o_site, o_edge,
                  o_tzp, o_locp, o_tzs, o_locs,
                  row_site_blocks, row_edge_blocks, row_virtual, row_fallback, row_status):
    """Groups g0..g1 (one call per chunk of groups: a call per group passing ~55 arrays cost more than
    the group's work on `full`, where a (merchant, bucket) holds ~2 arrivals)."""
    for g in range(g0, g1):
        lo = grp_out_off[g]
        hi = grp_out_off[g + 1]
        # 1. times, in generation order (row, k); o_seq holds k until step 3
        pos = lo
        for r in range(grp_row_off[g], grp_row_off[g + 1]):
            c = row_c[r]
            b = row_b[r]
            start = h0_us + np.int64(b) * d_us
            for k in range(row_n[r]):
                h, lo_, wrapped = row_counter(k_time[c, 1], k_time[c, 2], b, k)
                if wrapped:
                    row_status[r] = 1
                x0, _ = philox2x64_10(h, lo_, k_time[c, 0])
                off = np.int64(u01(x0) * d_us)
                if off >= d_us:
                    off = d_us - 1
                o_ts[pos] = start + off
                o_row[pos] = r
                o_seq[pos] = k
                pos += 1
        # 2. chronological within (merchant, bucket): arrival_seq then follows time per merchant
        _sort_group(o_ts, o_row, o_seq, lo, hi)
        # 3. route, civil time, fill the row columns
        for p in range(lo, hi):
            r = o_row[p]
            k = o_seq[p]
            c = row_c[r]
            b = row_b[r]
            mi = c_m[c]
            mode = m_mode[mi]
            ts = o_ts[p]
            virt = mode == MODE_VIRTUAL_ONLY
            tz = -1
            if mode != MODE_VIRTUAL_ONLY:
                h, lo_, wrapped = row_counter(k_site[c, 1], k_site[c, 2], b, k)
                if wrapped:
                    row_status[r] = 1
                x0, x1 = philox2x64_10(h, lo_, k_site[c, 0])
                row_site_blocks[r] += 1
                if mode == MODE_HYBRID and u01(x0) < p_hybrid:
                    virt = True
                else:
                    s = c_slice[c]
                    a = sl_off[s]
                    j = alias_pick_q32(u01(x1), sl_prob_q, sl_alias, a, sl_off[s + 1] - a)
                    o_site[p] = slot_site_id[a + j]
                    tz = slot_tz[a + j]
                    o_edge[p] = 0
                    o_tzs[p] = -1
                    o_locs[p] = 0
                    if c_fallback[c]:
                        row_fallback[r] += 1
            if virt:
                h, lo_, wrapped = row_counter(k_edge[c, 1], k_edge[c, 2], b, k)
                if wrapped:
                    row_status[r] = 1
                x0, _ = philox2x64_10(h, lo_, k_edge[c, 0])
                row_edge_blocks[r] += 1
                a = m_edge_lo[mi]
                j = edge_pick(u01(x0), e_prob_q, e_alias, a, m_edge_n[mi])
                o_edge[p] = e_id[a + j]
                tz = e_tz[a + j]
                o_site[p] = 0
                st = m_settle_tz[mi]
                o_tzs[p] = st
                row_virtual[r] += 1
            locp = utc_to_local_scalar(ts, tz, tz_start, trans_us, offset_us)
            if virt:
                o_locs[p] = locp if o_tzs[p] == tz else utc_to_local_scalar(ts, o_tzs[p], tz_start, trans_us, offset_us)
            o_tzp[p] = tz
            o_locp[p] = locp
            o_virt[p] = virt
            o_seq[p] = grp_seq0[g] + (p - lo)
            o_mid[p] = c_mid[c]
            o_zone[p] = c_zone[c]
            o_chan[p] = c_chan[c]
            o_b[p] = b
            o_lam[p] = row_lam[r]


_CHUNKS = 256     # work items of the parallel loop: enough to balance 2..16 threads


@njit(cache=True, parallel=True, nogil=True)
def expand_parallel(n_groups, *args):
    for j in prange(_CHUNKS):
        _expand_groups(j * n_groups // _CHUNKS, (j + 1) * n_groups // _CHUNKS, *args)


@njit(cache=True, nogil=True)
def expand_serial(n_groups, *args):
    _expand_groups(0, n_groups, *args)


# ---------------------------------------------------------------- S5 audit

@njit(cache=True, inline="always")
def _find(a, lo, hi, x):
    """First index j in the sorted slice a[lo:hi] with a[j] >= x (hi when none): x is there iff
    j < hi and a[j] == x."""
    while lo < hi:
        m = (lo + hi) >> 1
        if a[m] < x:
            lo = m + 1
        else:
            hi = m
    return lo


@njit(cache=True, nogil=True)
def audit_batch(m_idx, c_idx, b, ts, seq, virt, site_valid, site, edge_valid, edge, tzp, locp,
                op_valid, tzo, loco, st_valid, tzs, locs, zone_tz,
                H, h0_us, d_us, tz_start, trans_us, offset_us,
                m_mode, m_seq_off, m_settle_tz, c_fallback,
                ms_off, ms_site, ms_tz, me_off, me_edge, me_tz,
                cnt, seen, tz_hist, v):
    """Accumulate one batch of arrivals into the S5 counters. `v` (int64[16]) counts:
    0 arrivals, 1 key not in the S3 domain, 2 ts outside its bucket, 3 civil-time mismatch vs the
    cache, 4 flag/null inconsistency, 5 site not the merchant's, 6 site outside the zone and not
    a counted fallback, 7 fallback arrivals, 8 edge not the merchant's, 9 virtual on a
    NON_VIRTUAL merchant, 10 physical on a VIRTUAL_ONLY merchant, 11 seq out of 1..n,
    12 duplicate seq, 13 expected site-pick blocks, 14 virtual arrivals, 15 tzid_primary wrong."""
    for i in range(ts.shape[0]):
        v[0] += 1
        c = c_idx[i]
        mi = m_idx[i]
        if c < 0 or mi < 0 or b[i] < 0 or b[i] >= H:
            v[1] += 1
            continue
        cnt[np.int64(c) * H + b[i]] += 1
        start = h0_us + np.int64(b[i]) * d_us
        if ts[i] < start or ts[i] >= start + d_us:
            v[2] += 1
        t = tzp[i]
        if t < 0 or utc_to_local_scalar(ts[i], t, tz_start, trans_us, offset_us) != locp[i]:
            v[3] += 1
        if t >= 0:
            tz_hist[t] += 1
        mode = m_mode[mi]
        if mode != MODE_VIRTUAL_ONLY:
            v[13] += 1
        if virt[i]:
            v[14] += 1
            if site_valid[i] or not edge_valid[i] or not op_valid[i] or not st_valid[i]:
                v[4] += 1
                continue
            if mode == MODE_NON_VIRTUAL:
                v[9] += 1
            j = _find(me_edge, me_off[mi], me_off[mi + 1], edge[i])
            if j >= me_off[mi + 1] or me_edge[j] != edge[i]:
                v[8] += 1
            elif me_tz[j] != t or tzo[i] != t:
                v[15] += 1
            if tzs[i] != m_settle_tz[mi] or loco[i] != locp[i] or \
                    utc_to_local_scalar(ts[i], tzs[i], tz_start, trans_us, offset_us) != locs[i]:
                v[3] += 1
        else:
            if not site_valid[i] or edge_valid[i] or op_valid[i] or st_valid[i]:
                v[4] += 1
                continue
            if mode == MODE_VIRTUAL_ONLY:
                v[10] += 1
            j = _find(ms_site, ms_off[mi], ms_off[mi + 1], site[i])
            if j >= ms_off[mi + 1] or ms_site[j] != site[i]:
                v[5] += 1
            else:
                if ms_tz[j] != t:
                    v[15] += 1
                if ms_tz[j] != zone_tz[c]:
                    if c_fallback[c]:
                        v[7] += 1
                    else:
                        v[6] += 1
        n_m = m_seq_off[mi + 1] - m_seq_off[mi]
        q = seq[i]
        if q < 1 or q > n_m:
            v[11] += 1
        else:
            bit = m_seq_off[mi] + q - 1
            if seen[bit]:
                v[12] += 1
            seen[bit] = True
