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

EXP, LOG, SIN, COS = 0, 1, 2, 3


@njit(cache=True)
def _apply(x, op):
    """One element-wise loop for every function: the C library's scalar result per element."""
    out = np.empty_like(x)
    for i in range(x.size):
        v = x[i]
        if op == EXP:
            out[i] = math.exp(v)
        elif op == LOG:
            out[i] = math.log(v) if v > 0 else (-np.inf if v == 0 else np.nan)
        elif op == SIN:
            out[i] = math.sin(v)
        else:
            out[i] = math.cos(v)
    return out


def _call(x, op: int):
    a = np.asarray(x, dtype=np.float64)
    r = _apply(np.ascontiguousarray(a.reshape(-1)), op).reshape(a.shape)
    return r if a.ndim else float(r)


def exp(x):
    return _call(x, EXP)


def log(x):
    return _call(x, LOG)


def sin(x):
    return _call(x, SIN)


def cos(x):
    return _call(x, COS)
