"""Transcendental functions whose results do not depend on the CPU's vector features.

NumPy dispatches exp/log/pow/sin... to AVX-512, AVX2 or baseline kernels at run time, and
they differ by 1-2 ULP (measured: `NPY_DISABLE_CPU_FEATURES="X86_V4 AVX512_ICL X86_V3"`
changes np.exp/np.log/np.power on this machine). Published values must not, so engine code
uses these element-wise numba loops over the C library's scalar functions instead. (Numba
would use Intel SVML if `icc_rt` were installed; it is not a dependency, and
`NUMBA_DISABLE_INTEL_SVML=1` keeps it off where it is.)
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True)
def _exp(x):
    out = np.empty_like(x)
    for i in range(x.size):
        out.flat[i] = math.exp(x.flat[i])
    return out


@njit(cache=True)
def _log(x):
    out = np.empty_like(x)
    for i in range(x.size):
        v = x.flat[i]
        out.flat[i] = math.log(v) if v > 0 else (-np.inf if v == 0 else np.nan)
    return out


@njit(cache=True)
def _sin(x):
    out = np.empty_like(x)
    for i in range(x.size):
        out.flat[i] = math.sin(x.flat[i])
    return out


@njit(cache=True)
def _cos(x):
    out = np.empty_like(x)
    for i in range(x.size):
        out.flat[i] = math.cos(x.flat[i])
    return out


def _arr(x) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(x, dtype=np.float64))


def exp(x):
    a = _arr(x)
    r = _exp(a.reshape(-1)).reshape(a.shape)
    return r if a.ndim else float(r)


def log(x):
    a = _arr(x)
    r = _log(a.reshape(-1)).reshape(a.shape)
    return r if a.ndim else float(r)


def sin(x):
    a = _arr(x)
    r = _sin(a.reshape(-1)).reshape(a.shape)
    return r if a.ndim else float(r)


def cos(x):
    a = _arr(x)
    r = _cos(a.reshape(-1)).reshape(a.shape)
    return r if a.ndim else float(r)
