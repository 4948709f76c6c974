"""1A.S2's negative-binomial outlet count: NB as Poisson-Gamma with rejection of N < 2.

Segment-specific (the rejection rule is 1A's), built on the core gamma and Poisson samplers.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from engine.core.rng import make_state
from engine.core.samplers import gamma_mt, poisson

_INT32_MAX = 2147483647


@njit(cache=True, fastmath=False)
def nb_attempts(st_gamma, st_poisson, mu, phi, cap):
    """S2 loop: G ~ Gamma(phi), lam = (mu/phi) G, K ~ Poisson(lam); first K >= 2.

    Returns (N, rejections); (-1, cap) when `cap` attempts are exhausted.
    """
    scale = mu / phi
    for t in range(cap):
        g = gamma_mt(st_gamma, phi)
        lam = scale * g
        k = poisson(st_poisson, lam)
        if k >= 2:
            return k, np.int64(t)
    return np.int64(-1), np.int64(cap)


@njit(cache=True, fastmath=False)
def nb_batch(streams_gamma, streams_poisson, mu, phi, cap):
    """S2 over merchants. Inputs (n,3) uint64 stream rows, mu/phi float64[n].

    Returns (N int32[n], rejections int32[n], end_gamma (n,5) uint64, end_poisson (n,5) uint64).
    N is clipped to int32 max (so an N_OVERFLOW check still trips); -1 means cap exhausted.
    """
    n = streams_gamma.shape[0]
    n_out = np.empty(n, dtype=np.int32)
    rej = np.empty(n, dtype=np.int32)
    end_g = np.empty((n, 5), dtype=np.uint64)
    end_p = np.empty((n, 5), dtype=np.uint64)
    for i in range(n):
        sg = make_state(streams_gamma[i, 0], streams_gamma[i, 1], streams_gamma[i, 2])
        sp = make_state(streams_poisson[i, 0], streams_poisson[i, 1], streams_poisson[i, 2])
        k, r = nb_attempts(sg, sp, mu[i], phi[i], cap)
        n_out[i] = min(k, _INT32_MAX)
        rej[i] = r
        end_g[i] = sg
        end_p[i] = sp
    return n_out, rej, end_g, end_p
