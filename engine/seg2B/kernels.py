"""2B numba kernels over CSR arrays: site weights (S1), day effects (S3), group weights (S4),
router picks (S5). Arrays in, arrays out; no I/O, no Polars, no logging.

Status codes returned per merchant (0 = ok) are turned into named failures by logic.py.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from engine.core.rng import add_counter, make_state, next_u01_pair, philox2x64_10, u01

# per-merchant status codes of `site_weights`
OK, INVALID_BASE_WEIGHT, NORMALISATION_FAILED = 0, 1, 2

_TWO32 = 4294967296.0


# ---------------------------------------------------------------- inverse normal CDF

@njit(cache=True)
def ndtri(p):
    """Φ⁻¹(p) for 0 < p < 1: Wichura's AS241 (PPND16), relative error ~1e-16.

    The same algorithm as CPython's statistics.NormalDist.inv_cdf (the test reference).
    """
    q = p - 0.5
    if abs(q) <= 0.425:
        r = 0.180625 - q * q
        num = (((((((2.5090809287301226727e+3 * r + 3.3430575583588128105e+4) * r
                    + 6.7265770927008700853e+4) * r + 4.5921953931549871457e+4) * r
                  + 1.3731693765509461125e+4) * r + 1.9715909503065514427e+3) * r
                + 1.3314166789178437745e+2) * r + 3.3871328727963666080e+0) * q
        den = (((((((5.2264952788528545610e+3 * r + 2.8729085735721942674e+4) * r
                    + 3.9307895800092710610e+4) * r + 2.1213794301586595867e+4) * r
                  + 5.3941960214247511077e+3) * r + 6.8718700749205790830e+2) * r
                + 4.2313330701600911252e+1) * r + 1.0)
        return num / den
    r = p if q <= 0.0 else 1.0 - p
    r = math.sqrt(-math.log(r))
    if r <= 5.0:
        r = r - 1.6
        num = (((((((7.74545014278341407640e-4 * r + 2.27238449892691845833e-2) * r
                    + 2.41780725177450611770e-1) * r + 1.27045825245236838258e+0) * r
                  + 3.64784832476320460504e+0) * r + 5.76949722146069140550e+0) * r
                + 4.63033784615654529590e+0) * r + 1.42343711074968357734e+0)
        den = (((((((1.05075007164441684324e-9 * r + 5.47593808499534494600e-4) * r
                    + 1.51986665636164571966e-2) * r + 1.48103976427480074590e-1) * r
                  + 6.89767334985100004550e-1) * r + 1.67638483018380384940e+0) * r
                + 2.05319162663775882187e+0) * r + 1.0)
    else:
        r = r - 5.0
        num = (((((((2.01033439929228813265e-7 * r + 2.71155556874348757815e-5) * r
                    + 1.24266094738807843860e-3) * r + 2.65321895265761230930e-2) * r
                  + 2.96560571828504891230e-1) * r + 1.78482653991729133580e+0) * r
                + 5.46378491116411436990e+0) * r + 6.65790464350110377720e+0)
        den = (((((((2.04426310338993978564e-15 * r + 1.42151175831644588870e-7) * r
                    + 1.84631831751005468180e-5) * r + 7.86869131145613259100e-4) * r
                  + 1.48753612908506148525e-2) * r + 1.36929880922735805310e-1) * r
                + 5.99832206555887937690e-1) * r + 1.0)
    x = num / den
    return -x if q < 0.0 else x


@njit(cache=True)
def uniform_at(key, hi, lo, k):
    """u01(x0) of the block at counter (hi, lo) + k: one draw, one block, lane 1 unused."""
    h, l = add_counter(hi, lo, k)
    x0, _ = philox2x64_10(h, l, key)
    return u01(x0)


# ---------------------------------------------------------------- S1 site weights

@njit(cache=True)
def bucket_of(k, edges):
    return 0 if k <= edges[0] else (1 if k <= edges[1] else 2)


@njit(cache=True)
def _scale_others(p, lo, hi, j, target):
    """Scale every entry but j to sum to `target`; all-zero others share it equally."""
    rest = 0.0
    for i in range(lo, hi):
        if i != j:
            rest += p[i]
    n_o = hi - lo - 1
    for i in range(lo, hi):
        if i != j:
            p[i] = p[i] * (target / rest) if rest > 0.0 else target / n_o


@njit(cache=True)
def site_weights(streams, off, edges, mix, alpha, top1_cap, keep, min_sec,
                 floor_mode, floor_value, cap_mode, cap_value, eps):
    """Per merchant (CSR rows off[m]..off[m+1] = its sites in key order) the chapter's S1 steps 1-6.

    K = 1: p = 1, profile 0 (single), no draws. K >= 2: 1 + K uniforms from ceil((1+K)/2) blocks
    (lane 0 then lane 1): u0 picks the profile (cumulative `mix[bucket]`, fixed order), u_1..u_K give
    w_i = (-ln u_i)^alpha; then top-1 soft cap, secondary floor, policy floor/cap, normalisation.
    floor_mode 0 absolute / 1 relative; cap_mode 0 none / 1 absolute.
    Returns p, floor_applied, profile (0..3), bucket (0..2), end states (M,5), status (M).
    """
    n_m = off.shape[0] - 1
    n = off[n_m]
    p = np.zeros(n, np.float64)
    floored = np.zeros(n, np.bool_)
    profile = np.zeros(n_m, np.int8)
    bucket = np.zeros(n_m, np.int8)
    status = np.zeros(n_m, np.int8)
    end = np.zeros((n_m, 5), np.uint64)
    width = 0
    for m in range(n_m):
        width = max(width, off[m + 1] - off[m])
    u = np.empty(width + 2, np.float64)
    for m in range(n_m):
        lo, hi = off[m], off[m + 1]
        k = hi - lo
        b = bucket_of(k, edges)
        bucket[m] = b
        st = make_state(streams[m, 0], streams[m, 1], streams[m, 2])
        if k == 1:
            p[lo] = 1.0
            end[m] = st
            continue
        nb = (k + 2) // 2                               # ceil((1 + K) / 2) blocks
        for q in range(nb):
            u[2 * q], u[2 * q + 1] = next_u01_pair(st)
        st[3] = np.uint64(1 + k)                        # draws = uniforms used (an odd tail lane is unused)
        prof = 2
        acc = 0.0
        for q in range(3):
            acc += mix[b, q]
            if u[0] < acc:
                prof = q
                break
        profile[m] = prof + 1
        a = alpha[b, prof]
        s = 0.0
        for i in range(k):
            w = math.pow(-math.log(u[1 + i]), a)
            p[lo + i] = w
            s += w
        for i in range(lo, hi):
            p[i] = p[i] / s if s > 0.0 else 1.0 / k
        j = lo
        for i in range(lo + 1, hi):
            if p[i] > p[j]:
                j = i
        c = top1_cap[b]
        if p[j] > c:                                   # step 4: soft cap on the top site
            pj = c + keep * (p[j] - c)
            _scale_others(p, lo, hi, j, 1.0 - pj)
            p[j] = pj
        sm = min_sec[b]
        if 1.0 - p[j] < sm:                            # step 5: the others keep at least sm
            p[j] = 1.0 - sm
            _scale_others(p, lo, hi, j, sm)
        fl = floor_value
        if floor_mode == 1:
            mx = 0.0
            for i in range(lo, hi):
                mx = max(mx, p[i])
            fl = floor_value * mx
        s = 0.0
        for i in range(lo, hi):                        # step 6: policy floor and cap
            v = max(p[i], fl)
            floored[i] = v != p[i]
            if cap_mode == 1:
                v = min(v, cap_value)
            p[i] = v
            s += v
        if s == 0.0:
            for i in range(lo, hi):
                p[i] = 1.0
                floored[i] = True
            s = float(k)
        t = 0.0
        for i in range(lo, hi):
            p[i] = p[i] / s
            t += p[i]
        for i in range(lo, hi):
            if p[i] < -eps:
                status[m] = INVALID_BASE_WEIGHT
            elif p[i] < 0.0:
                p[i] = 0.0
        if abs(t - 1.0) > eps and status[m] == OK:
            status[m] = NORMALISATION_FAILED
        end[m] = st
    return p, floored, profile, bucket, end, status


# ---------------------------------------------------------------- S3 day effects

@njit(cache=True)
def day_effects(streams, goff, sigma, amp, cos_dow, gmin, gmax):
    """Rows per merchant m in (utc_day, group) order: D x G_m, group rows goff[m]..goff[m+1].

    Row r (0-based within m) uses the uniform at counter base_m + r; Z = Φ⁻¹(u);
    log γ = -σ²/2 + σZ + amp_m·cos_dow[d]; γ clipped to [gmin, gmax]; log_gamma = ln(clipped γ).
    Returns gamma, log_gamma, sigma_row, ctr_hi, ctr_lo, clipped (bool), end states (M,5).
    """
    n_m = goff.shape[0] - 1
    n_d = cos_dow.shape[0]
    n = goff[n_m] * n_d
    gamma = np.empty(n, np.float64)
    lg = np.empty(n, np.float64)
    sg = np.empty(n, np.float64)
    c_hi = np.empty(n, np.uint64)
    c_lo = np.empty(n, np.uint64)
    clipped = np.zeros(n, np.bool_)
    end = np.zeros((n_m, 5), np.uint64)
    row = 0
    for m in range(n_m):
        key, hi, lo = streams[m, 0], streams[m, 1], streams[m, 2]
        g0, g1 = goff[m], goff[m + 1]
        r = 0
        for d in range(n_d):
            w = amp[m] * cos_dow[d]
            for g in range(g0, g1):
                h, l = add_counter(hi, lo, np.uint64(r))
                x0, _ = philox2x64_10(h, l, key)
                s = sigma[g]
                v = math.exp(-0.5 * s * s + s * ndtri(u01(x0)) + w)
                if v < gmin or v > gmax:
                    clipped[row] = True
                    v = min(max(v, gmin), gmax)
                gamma[row] = v
                lg[row] = math.log(v)
                sg[row] = s
                c_hi[row] = h
                c_lo[row] = l
                row += 1
                r += 1
        st = make_state(key, hi, lo)
        h, l = add_counter(hi, lo, np.uint64(r))
        st[1], st[2], st[3], st[4] = h, l, np.uint64(r), np.uint64(r)
        end[m] = st
    return gamma, lg, sg, c_hi, c_lo, clipped, end


# ---------------------------------------------------------------- S4 group weights

@njit(cache=True)
def _blend_ok(base, g0, g1, lam, cap, hfloor):
    ng = g1 - g0
    mx = 0.0
    h = 0.0
    for g in range(g0, g1):
        b = (1.0 - lam) * base[g] + lam / ng
        mx = max(mx, b)
        if b > 0.0:
            h -= b * math.log(b)
    return mx <= cap and h / math.log(ng) >= hfloor


@njit(cache=True)
def base_shares(p_weight, site_group, soff, goff):
    """Σ p_weight per (merchant, group), serial in site-key order. site_group = group row of
    each site (absolute, within goff[m]..goff[m+1]); soff = merchant CSR over sites."""
    base = np.zeros(goff[goff.shape[0] - 1], np.float64)
    for m in range(soff.shape[0] - 1):
        for i in range(soff[m], soff[m + 1]):
            base[site_group[i]] += p_weight[i]
    return base


@njit(cache=True)
def regularise(base, goff, enabled, min_groups, cap, hfloor, max_blend, iters):
    """Smallest λ ∈ [0, max_blend] (bisection) with max b' <= cap and H(b')/ln G >= hfloor,
    b' = (1-λ)·base + λ/G; λ = max_blend when unattainable. Returns (base_reg, λ per merchant)."""
    n_m = goff.shape[0] - 1
    reg = base.copy()
    lam_out = np.zeros(n_m, np.float64)
    if not enabled:
        return reg, lam_out
    for m in range(n_m):
        g0, g1 = goff[m], goff[m + 1]
        ng = g1 - g0
        if ng < min_groups or _blend_ok(base, g0, g1, 0.0, cap, hfloor):
            continue
        if not _blend_ok(base, g0, g1, max_blend, cap, hfloor):
            lam = max_blend
        else:
            a, b = 0.0, max_blend
            for _ in range(iters):
                mid = 0.5 * (a + b)
                if _blend_ok(base, g0, g1, mid, cap, hfloor):
                    b = mid
                else:
                    a = mid
            lam = b
        lam_out[m] = lam
        for g in range(g0, g1):
            reg[g] = (1.0 - lam) * base[g] + lam / ng
    return reg, lam_out


@njit(cache=True)
def group_weights(base_reg, goff, gamma, n_days):
    """Per S3 row (merchant, day, group): mass_raw = base_reg·γ, denom_raw = Σ_g mass_raw (serial),
    p_group = mass_raw / denom_raw. Rows laid out as day_effects. Returns p, mass, denom, min denom."""
    n = gamma.shape[0]
    p = np.empty(n, np.float64)
    mass = np.empty(n, np.float64)
    denom = np.empty(n, np.float64)
    row = 0
    min_den = np.inf
    for m in range(goff.shape[0] - 1):
        g0, g1 = goff[m], goff[m + 1]
        for d in range(n_days):
            s = 0.0
            for g in range(g0, g1):
                mass[row + g - g0] = base_reg[g] * gamma[row + g - g0]
                s += mass[row + g - g0]
            min_den = min(min_den, s)
            for g in range(g0, g1):
                denom[row + g - g0] = s
                p[row + g - g0] = mass[row + g - g0] / s if s > 0.0 else 0.0
            row += g1 - g0
    return p, mass, denom, min_den


# ---------------------------------------------------------------- S5 router

@njit(cache=True, inline="always")
def alias_decode(u, lo, k, prob_q, alias):
    """The chapter's Q0.32 decode: y = u·K, j = ⌊y⌋ (≤ K-1), v = ⌊(y-j)·2^32⌋; slot j if v < prob_q[j]
    else alias[j]. Returns the slot within the slice [lo, lo+k).
    TODO(lead): replace with engine.core.alias's decode once it lands (one law, one place)."""
    y = u * k
    j = min(np.int64(y), k - 1)
    v = np.uint64((y - j) * _TWO32)
    if v < np.uint64(prob_q[lo + j]):
        return j
    return np.int64(alias[lo + j])


@njit(cache=True)
def route(md_idx, seq, st_group, st_site, md_off, p_group, row_slice, slice_off, prob_q, alias):
    """Route arrivals: arrival a of (merchant, day) md_idx[a] with ordinal seq[a].

    Stage A: u_A = uniform at counter base_A[md] + seq (family alias_pick_group); group row =
    first r in md_off[md]..md_off[md+1] with u_A < cumulative p_group (last row if rounding).
    Stage B: u_B = uniform at counter base_B[md] + seq (alias_pick_site); decode the alias slice
    row_slice[r]. Exactly one block (one draw) per stage per arrival; arrivals are independent,
    so any chunking gives the same answer. Returns (group row, slot row = slice_off[s] + slot).
    """
    n = md_idx.shape[0]
    grp = np.empty(n, np.int64)
    slot = np.empty(n, np.int64)
    for a in range(n):
        md = md_idx[a]
        j = np.uint64(seq[a])
        ua = uniform_at(st_group[md, 0], st_group[md, 1], st_group[md, 2], j)
        r0, r1 = md_off[md], md_off[md + 1]
        r = r1 - 1
        acc = 0.0
        for q in range(r0, r1):
            acc += p_group[q]
            if ua < acc:
                r = q
                break
        grp[a] = r
        ub = uniform_at(st_site[md, 0], st_site[md, 1], st_site[md, 2], j)
        s = row_slice[r]
        lo = slice_off[s]
        slot[a] = lo + alias_decode(ub, lo, slice_off[s + 1] - lo, prob_q, alias)
    return grp, slot
