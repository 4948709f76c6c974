"""1A numba kernels: arrays in, arrays out; no I/O, no Polars.

Each merchant owns one stream per family, given as a row (key, ctr_hi, ctr_lo) of a
(n, 3) uint64 array. Kernels return the end state (key, hi, lo, draws, blocks) of each
stream so the state can write its rng trace and S9 can reconcile budgets.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from engine.core.rng import make_state, next_u01
from engine.core.samplers import gamma_mt, poisson


@njit(cache=True)
def uniforms_masked(streams, k, mask):
    """k sequential uniforms per stream where mask is set (NaN and no draw elsewhere)."""
    n = streams.shape[0]
    out = np.full((n, k), np.nan)
    end = np.zeros((n, 5), dtype=np.uint64)
    for i in range(n):
        st = make_state(streams[i, 0], streams[i, 1], streams[i, 2])
        if mask[i]:
            for j in range(k):
                out[i, j] = next_u01(st)
        end[i] = st
    return out, end


def uniforms(streams, k):
    return uniforms_masked(streams, k, np.ones(streams.shape[0], dtype=np.bool_))


@njit(cache=True)
def ztp(streams, lam, max_attempts):
    """Zero-truncated Poisson by rejection: first K >= 1 within max_attempts (else 0, exhausted)."""
    n = streams.shape[0]
    k_out = np.zeros(n, dtype=np.int32)
    attempts = np.zeros(n, dtype=np.int32)
    exhausted = np.zeros(n, dtype=np.bool_)
    end = np.zeros((n, 5), dtype=np.uint64)
    for i in range(n):
        st = make_state(streams[i, 0], streams[i, 1], streams[i, 2])
        if lam[i] > 0.0:
            exhausted[i] = True
            for a in range(1, max_attempts + 1):
                k = poisson(st, lam[i])
                attempts[i] = a
                if k >= 1:
                    k_out[i] = k
                    exhausted[i] = False
                    break
        end[i] = st
    return k_out, attempts, exhausted, end


@njit(cache=True)
def csr_uniforms(streams, offsets):
    """One uniform per CSR row of each merchant (Gumbel keys of S6)."""
    n = streams.shape[0]
    u = np.empty(offsets[n])
    end = np.zeros((n, 5), dtype=np.uint64)
    for i in range(n):
        st = make_state(streams[i, 0], streams[i, 1], streams[i, 2])
        for j in range(offsets[i], offsets[i + 1]):
            u[j] = next_u01(st)
        end[i] = st
    return u, end


@njit(cache=True)
def csr_gamma(streams, offsets, alpha, draw):
    """Gamma(alpha_j, 1) per CSR row, in row order, for merchants with draw[i] set."""
    n = streams.shape[0]
    g = np.full(offsets[n], np.nan)
    end = np.zeros((n, 5), dtype=np.uint64)
    for i in range(n):
        st = make_state(streams[i, 0], streams[i, 1], streams[i, 2])
        if draw[i]:
            for j in range(offsets[i], offsets[i + 1]):
                g[j] = gamma_mt(st, alpha[j])
        end[i] = st
    return g, end


@njit(cache=True)
def cusum_max(z, k):
    """One-sided CUSUM S_t = max(0, S_{t-1} + z_t - k); returns max_t S_t."""
    s = 0.0
    best = 0.0
    for t in range(z.shape[0]):
        s = max(0.0, s + z[t] - k)
        best = max(best, s)
    return best
