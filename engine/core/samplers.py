"""Numba samplers on a stream state (spec 1A, S2; shared with S4 and S7).

Every sampler takes a stream state ``st`` (uint64[5] = [key, ctr_hi, ctr_lo, draws, blocks],
see engine.core.rng) as its first argument and consumes uniforms from it:

- ``std_normal``: Box-Muller from ONE block (``next_u01_pair``): 2 draws, 1 block; the
  sine partner is discarded.
- ``gamma_mt``: Marsaglia-Tsang. alpha >= 1: per iteration one normal (2 draws) and, when
  v > 0, one ``next_u01`` (1 draw) -> 3 draws per iteration (2 when v <= 0). alpha < 1:
  Gamma(alpha + 1) then one more ``next_u01`` for U^(1/alpha).
- ``poisson``: lam < 10 (fixed threshold): product-of-uniforms inversion, K+1 draws.
  lam >= 10: PTRS (Hormann 1993, as numpy's legacy random_poisson_ptrs), 2 draws
  (two ``next_u01`` calls, U first then V) per attempt.
- ``nb_attempts`` / ``nb_batch``: the S2 Poisson-Gamma mixture loop with N >= 2.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from engine.core.rng import next_u01, next_u01_pair

__all__ = ["TAU", "POISSON_PTRS_THRESHOLD", "std_normal", "gamma_mt", "poisson"]

TAU = float.fromhex("0x1.921fb54442d18p+2")  # 2*pi, bit-exact
POISSON_PTRS_THRESHOLD = 10.0
_ONE_THIRD = 1.0 / 3.0
_PTRS_U_CUT = 0.86  # k uses + u_cut/2 = 0.43
_INT32_MAX = 2147483647


@njit(cache=True, fastmath=False)
def std_normal(st):
    """Standard normal by Box-Muller: z = sqrt(-2 ln u1) * cos(TAU u2), one block."""
    u1, u2 = next_u01_pair(st)
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(TAU * u2)


@njit(cache=True, fastmath=False)
def _gamma_mt_ge1(st, alpha):
    d = alpha - _ONE_THIRD
    c = 1.0 / math.sqrt(9.0 * d)
    while True:
        z = std_normal(st)
        t = 1.0 + c * z
        v = t * t * t
        if v <= 0.0:
            continue
        u = next_u01(st)
        if math.log(u) < 0.5 * z * z + d - d * v + d * math.log(v):
            return d * v


@njit(cache=True, fastmath=False)
def gamma_mt(st, alpha):
    """Gamma(alpha, 1) by Marsaglia-Tsang (alpha > 0)."""
    if alpha >= 1.0:
        return _gamma_mt_ge1(st, alpha)
    g = _gamma_mt_ge1(st, alpha + 1.0)
    u = next_u01(st)
    return g * math.pow(u, 1.0 / alpha)


@njit(cache=True, fastmath=False)
def _poisson_inversion(st, lam):
    enlam = math.exp(-lam)
    p = 1.0
    k = 0
    while True:
        p *= next_u01(st)
        if p <= enlam:
            return k
        k += 1


@njit(cache=True, fastmath=False)
def _poisson_ptrs(st, lam):
    slam = math.sqrt(lam)
    loglam = math.log(lam)
    b = 0.931 + 2.53 * slam
    a = -0.059 + 0.02483 * b
    invalpha = 1.1239 + 1.1328 / (b - 3.4)
    vr = 0.9277 - 3.6224 / (b - 2.0)
    half_cut = 0.5 * _PTRS_U_CUT
    while True:
        u = next_u01(st) - 0.5
        v = next_u01(st)
        us = 0.5 - abs(u)
        kf = math.floor((2.0 * a / us + b) * u + lam + half_cut)
        if us >= 0.07 and v <= vr:
            return np.int64(kf)
        if kf < 0.0 or (us < 0.013 and v > us):
            continue
        if (math.log(v * invalpha / (a / (us * us) + b))
                <= -lam + kf * loglam - math.lgamma(kf + 1.0)):
            return np.int64(kf)


@njit(cache=True, fastmath=False)
def poisson(st, lam):
    """Poisson(lam) as int64: inversion below 10, PTRS at or above."""
    if lam < POISSON_PTRS_THRESHOLD:
        return np.int64(_poisson_inversion(st, lam))
    return _poisson_ptrs(st, lam)
