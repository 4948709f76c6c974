"""5A numba kernels: overlay accumulation on local slots and the UTC / local composition. Arrays in,
arrays out; no files, no logging. Every output element is computed by one fixed-order loop, so results do
not depend on threads or chunking."""
from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, inline="always")
def ramp_factor(A, j, n, r_in, r_out):
    """Chapter 5A §S4 step 2: linear ramps to peak A; where both ramps apply, the value closer to 1."""
    f = A
    have = False
    if j < r_in:
        f = 1.0 + (A - 1.0) * (j + 1) / (r_in + 1)
        have = True
    if j >= n - r_out:
        g = 1.0 + (A - 1.0) * (n - j) / (r_out + 1)
        if not have or abs(g - 1.0) < abs(f - 1.0):
            f = g
    return f


@njit(cache=True)
def overlay_accumulate(ev_type, ev_local, ev_start, ev_end, ev_ramp, ev_amp, ev_rin, ev_rout,
                       ev_country, ev_tz, ev_class, ev_merchant, ev_rank,
                       sig_country, sig_tz, sig_class, sig_merchant,
                       L0, nL, rep_h, is_min, val, rank):
    """Per (type, signature, local slot): the aggregate factor of the most specific active events.

    ev_start/ev_end: absolute local slot indices for local-basis events (ev_local = 1), UTC bucket indices
    (may lie outside [0, H)) for UTC-basis events. Codes -1 (and merchant 0) are "no predicate".
    rank[T, s, L] = -1 where no event of type T is active. val/rank are updated in place.
    """
    n_ev = ev_type.shape[0]
    n_sig = sig_tz.shape[0]
    for e in range(n_ev):
        T = ev_type[e]
        for s in range(n_sig):
            if ev_country[e] >= 0 and ev_country[e] != sig_country[s]:
                continue
            if ev_tz[e] >= 0 and ev_tz[e] != sig_tz[s]:
                continue
            if ev_class[e] >= 0 and ev_class[e] != sig_class[s]:
                continue
            if ev_merchant[e] != 0 and ev_merchant[e] != sig_merchant[s]:
                continue
            t = sig_tz[s]
            n = ev_end[e] - ev_start[e]
            lo, hi = 0, nL[t]
            if ev_local[e] == 1:                 # only slots inside the event window can match (0 <= j < n)
                lo, hi = max(lo, ev_start[e] - L0[t]), min(hi, ev_end[e] - L0[t])
            for L in range(lo, hi):
                if ev_local[e] == 1:
                    j = L0[t] + L - ev_start[e]
                else:
                    j = rep_h[t, L] - ev_start[e]
                if j < 0 or j >= n:
                    continue
                f = ev_amp[e] if ev_ramp[e] == 0 else ramp_factor(ev_amp[e], j, n, ev_rin[e], ev_rout[e])
                r = rank[T, s, L]
                if ev_rank[e] > r:
                    rank[T, s, L] = ev_rank[e]
                    val[T, s, L] = f
                elif ev_rank[e] == r:
                    if is_min[T]:
                        if f < val[T, s, L]:
                            val[T, s, L] = f
                    elif f > val[T, s, L]:
                        val[T, s, L] = f


@njit(cache=True, parallel=True)
def combine_factors(val, rank, mask_when, mask_cap, lo, hi, F, bits):
    """F[s, L] = clip(f_0 · f_1 · ... in type order, lo, hi), f_T = val[T, s, L] where type T is active
    (rank >= 0) else 1, capped at 1 where a masking rule's type (mask_when[r]) is active and mask_cap[r, T];
    bits[s, L] = Σ 2^T over the active types. val is read only where active."""
    nT, n_sig, NL = rank.shape
    for s in prange(n_sig):
        for L in range(NL):
            b = 0
            for T in range(nT):
                if rank[T, s, L] >= 0:
                    b |= 1 << T
            acc = 1.0
            for T in range(nT):
                f = val[T, s, L] if (b >> T) & 1 else 1.0
                for r in range(mask_when.shape[0]):
                    if mask_cap[r, T] and (b >> mask_when[r]) & 1 and f > 1.0:
                        f = 1.0
                acc = acc * f
            F[s, L] = min(max(acc, lo), hi)
            bits[s, L] = b


@njit(cache=True, parallel=True)
def compose_utc(base, row_tz, row_sig, row_mid, row_cg, ptr, cL, cw, kL, F, frac, H,
                out, out_mid, out_tz, out_cg, out_h):
    """out[r·H + h] = frac · Σ_entries w · base[r, k(L)] · F[sig(r), L] over the CSR entries of (tz(r), h);
    the key columns (merchant, tz code, channel code, h) are filled in the same pass."""
    n = base.shape[0]
    for r in prange(n):
        t = row_tz[r]
        s = row_sig[r]
        m = row_mid[r]
        c = row_cg[r]
        o = r * H
        for h in range(H):
            acc = 0.0
            for e in range(ptr[t, h], ptr[t, h + 1]):
                L = cL[e]
                acc += cw[e] * base[r, kL[t, L]] * F[s, L]
            out[o + h] = acc * frac
            out_mid[o + h] = m
            out_tz[o + h] = t
            out_cg[o + h] = c
            out_h[o + h] = h


@njit(cache=True, parallel=True)
def compose_local(base, row_tz, row_sig, nL, kL, F, frac, width, out):
    """out[r·width + L] = frac · base[r, k(L)] · F[sig(r), L] for L < nL[tz(r)], NaN-free zeros beyond."""
    n = base.shape[0]
    for r in prange(n):
        t = row_tz[r]
        s = row_sig[r]
        o = r * width
        for L in range(width):
            out[o + L] = frac * base[r, kL[t, L]] * F[s, L] if L < nL[t] else 0.0


@njit(cache=True, nogil=True)
def checked_max(x):
    """max(x) if every element is finite and >= 0, else -1.0 (one pass instead of isfinite/min/max)."""
    m = 0.0
    for i in range(x.shape[0]):
        v = x[i]
        if not (v >= 0.0 and v < np.inf):            # NaN fails both comparisons
            return -1.0
        if v > m:
            m = v
    return m
