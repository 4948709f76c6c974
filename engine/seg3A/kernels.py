"""3A numba kernels: dispersed Dirichlet shares over CSR pairs. Arrays in, arrays out; no I/O."""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from engine.core.rng import make_state
from engine.core.samplers import gamma_mt

# Acklam's rational approximation of the standard normal quantile (|rel. error| < 1.2e-9).
_A = np.array([-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
               1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00])
_B = np.array([-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
               6.680131188771972e+01, -1.328068155288572e+01])
_C = np.array([-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
               -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00])
_D = np.array([7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00])


@njit(cache=True)
def norm_ppf(u):
    """Φ⁻¹(u) for 0 < u < 1 (scalar libm calls only: bit-stable across CPUs)."""
    if u < 0.02425:
        q = math.sqrt(-2.0 * math.log(u))
        return (((((_C[0] * q + _C[1]) * q + _C[2]) * q + _C[3]) * q + _C[4]) * q + _C[5]) / \
            ((((_D[0] * q + _D[1]) * q + _D[2]) * q + _D[3]) * q + 1.0)
    if u > 1.0 - 0.02425:
        q = math.sqrt(-2.0 * math.log(1.0 - u))
        return -(((((_C[0] * q + _C[1]) * q + _C[2]) * q + _C[3]) * q + _C[4]) * q + _C[5]) / \
            ((((_D[0] * q + _D[1]) * q + _D[2]) * q + _D[3]) * q + 1.0)
    q = u - 0.5
    r = q * q
    return (((((_A[0] * r + _A[1]) * r + _A[2]) * r + _A[3]) * r + _A[4]) * r + _A[5]) * q / \
        (((((_B[0] * r + _B[1]) * r + _B[2]) * r + _B[3]) * r + _B[4]) * r + 1.0)


@njit(cache=True)
def dispersed_alphas(off, alpha, jitter_u, scale, temperature, jitter, clip, floor, enabled):
    """α'_i = max(floor, scale·A·exp(g)·q_i), q = a^(1/T)/Σa^(1/T), g = clip(jitter·Φ⁻¹(u), ±clip), per CSR group."""
    out = np.empty(alpha.shape[0])
    for p in range(off.shape[0] - 1):
        lo, hi = off[p], off[p + 1]
        if not enabled:
            for i in range(lo, hi):
                out[i] = alpha[i]
            continue
        a_sum = 0.0
        q_sum = 0.0
        for i in range(lo, hi):
            a_sum += alpha[i]
            out[i] = alpha[i] if temperature == 1.0 else math.pow(alpha[i], 1.0 / temperature)
            q_sum += out[i]
        g = 0.0
        if jitter > 0.0:
            g = min(max(jitter * norm_ppf(jitter_u[p]), -clip), clip)
        f = scale * a_sum * math.exp(g)
        for i in range(lo, hi):
            out[i] = max(floor, f * (out[i] / q_sum))
    return out


@njit(cache=True)
def dirichlet_pairs(streams, off, alpha):
    """One stream per pair: G_i ~ Gamma(α_i) in row (tzid) order, share_i = G_i/ΣG.

    K = 1 gives share 1 with no draw. Returns (share, end_states, bad) with bad = first pair whose
    ΣG is 0 or non-finite, else -1."""
    n = off.shape[0] - 1
    share = np.empty(alpha.shape[0])
    end = np.zeros((n, 5), np.uint64)
    for p in range(n):
        st = make_state(streams[p, 0], streams[p, 1], streams[p, 2])
        lo, hi = off[p], off[p + 1]
        if hi - lo == 1:
            share[lo] = 1.0
            end[p] = st
            continue
        tot = 0.0
        for i in range(lo, hi):
            share[i] = gamma_mt(st, alpha[i])
            tot += share[i]
        if not (tot > 0.0 and tot < np.inf):
            return share, end, p
        for i in range(lo, hi):
            share[i] = share[i] / tot
        end[p] = st
    return share, end, -1
