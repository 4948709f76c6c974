"""Samplers on a stream state: draw accounting, exact replay, statistics, determinism."""
from __future__ import annotations

import math

import numpy as np
import pytest
from numba import njit

from engine.core import rng, samplers  # noqa: E402
from engine.core.samplers import gamma_mt, poisson, std_normal  # noqa: E402
from engine.seg1A import nb  # noqa: E402

U = np.uint64
M64 = (1 << 64) - 1


def state(tag: str, i: int = 0) -> np.ndarray:
    return rng.new_state(*rng.derive_stream("test.samplers", "mf", "ph", 20240601, "", f"{tag}:{i}"))


@njit(cache=False)
def _gamma_many(st, alpha, n):
    out = np.empty(n)
    for i in range(n):
        out[i] = gamma_mt(st, alpha)
    return out


@njit(cache=False)
def _poisson_many(st, lam, n):
    out = np.empty(n, dtype=np.int64)
    for i in range(n):
        out[i] = poisson(st, lam)
    return out


@njit(cache=False)
def _normal_many(st, n):
    out = np.empty(n)
    for i in range(n):
        out[i] = std_normal(st)
    return out


# ----------------------------------------------------------------------------- Python references
class PyStream:
    """Independent pure-Python consumer of the same stream (uses only philox2x64_10)."""

    def __init__(self, key, hi, lo):
        self.key, self.ctr, self.draws, self.blocks = int(key), (int(hi) << 64) | int(lo), 0, 0

    def _block(self):
        x0, x1 = rng.philox2x64_10(U(self.ctr >> 64), U(self.ctr & M64), U(self.key))
        self.ctr = (self.ctr + 1) & ((1 << 128) - 1)
        self.blocks += 1
        return int(x0), int(x1)

    @staticmethod
    def _u(x):
        return min(((x >> 11) + 0.5) / 2**53, 1.0 - 2.0**-53)

    def u(self):
        self.draws += 1
        return self._u(self._block()[0])

    def pair(self):
        self.draws += 2
        x0, x1 = self._block()
        return self._u(x0), self._u(x1)

    def end(self):
        return [self.key, self.ctr >> 64, self.ctr & M64, self.draws, self.blocks]


TAU = float.fromhex("0x1.921fb54442d18p+2")


def py_normal(s):
    u1, u2 = s.pair()
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(TAU * u2)


def py_gamma(s, alpha):
    a = alpha if alpha >= 1 else alpha + 1.0
    d = a - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    while True:
        z = py_normal(s)
        t = 1.0 + c * z
        v = t * t * t
        if v <= 0:
            continue
        u = s.u()
        if math.log(u) < 0.5 * z * z + d - d * v + d * math.log(v):
            g = d * v
            break
    if alpha < 1:
        g *= s.u() ** (1.0 / alpha)
    return g


def py_poisson(s, lam):
    if lam < 10:
        enlam, p, k = math.exp(-lam), 1.0, 0
        while True:
            p *= s.u()
            if p <= enlam:
                return k
            k += 1
    slam, loglam = math.sqrt(lam), math.log(lam)
    b = 0.931 + 2.53 * slam
    a = -0.059 + 0.02483 * b
    inva = 1.1239 + 1.1328 / (b - 3.4)
    vr = 0.9277 - 3.6224 / (b - 2)
    while True:
        u = s.u() - 0.5
        v = s.u()
        us = 0.5 - abs(u)
        k = math.floor((2 * a / us + b) * u + lam + 0.43)
        if us >= 0.07 and v <= vr:
            return k
        if k < 0 or (us < 0.013 and v > us):
            continue
        if math.log(v * inva / (a / (us * us) + b)) <= -lam + k * loglam - math.lgamma(k + 1):
            return k


def _pystream(st):
    return PyStream(int(st[0]), int(st[1]), int(st[2]))


# ----------------------------------------------------------------------------- accounting
def test_std_normal_costs_one_block_two_draws():
    st = state("normal")
    ps = _pystream(st)
    z = std_normal(st)
    assert int(st[3]) == 2 and int(st[4]) == 1
    assert z == py_normal(ps)
    assert list(map(int, st)) == ps.end()


def test_std_normal_uses_block_at_counter():
    st = state("normal2")
    u1, u2 = rng.uniforms_at(U(st[0]), U(st[1]), U(st[2]), 1)[0], None
    x0, x1 = rng.philox2x64_10(U(st[1]), U(st[2]), U(st[0]))
    u2 = rng.u01(U(x1))
    assert std_normal(st) == math.sqrt(-2 * math.log(u1)) * math.cos(TAU * u2)


def test_tau_is_two_pi():
    assert samplers.TAU == 2 * math.pi


@pytest.mark.parametrize("lam", [0.0, 0.3, 3.0, 9.99])
def test_poisson_inversion_costs_k_plus_one(lam):
    for i in range(200):
        st = state("pinv", i)
        k = poisson(st, lam)
        assert int(st[3]) == k + 1 == int(st[4])


@pytest.mark.parametrize("lam", [10.0, 40.0, 1234.5])
def test_poisson_ptrs_two_per_attempt(lam):
    for i in range(100):
        st = state("pptrs", i)
        poisson(st, lam)
        assert int(st[3]) % 2 == 0 and int(st[3]) == int(st[4]) >= 2


@pytest.mark.parametrize("alpha", [0.05, 0.5, 1.0, 3.0, 20.0])
def test_gamma_replays_against_python_reference(alpha):
    for i in range(100):
        st = state(f"gref{alpha}", i)
        ps = _pystream(st)
        g = gamma_mt(st, alpha)
        assert g == py_gamma(ps, alpha)
        assert list(map(int, st)) == ps.end()
        # alpha >= 1: 3 draws / 2 blocks per v>0 iteration, 2 draws / 1 block per v<=0 one
        extra = 1 if alpha < 1 else 0
        nz = int(st[3]) - int(st[4])          # number of normals (each: 2 draws, 1 block)
        nu = int(st[4]) - nz                  # number of single uniforms
        assert nz >= 1 and 1 + extra <= nu <= nz + extra


@pytest.mark.parametrize("lam", [0.7, 3.0, 9.5, 10.0, 40.0, 500.0])
def test_poisson_replays_against_python_reference(lam):
    for i in range(200):
        st = state(f"pref{lam}", i)
        ps = _pystream(st)
        assert poisson(st, lam) == py_poisson(ps, lam)
        assert list(map(int, st)) == ps.end()


def test_gamma_below_one_is_boosted_gamma_times_u_pow():
    a = state("boost")
    b = a.copy()
    g_small = gamma_mt(a, 0.4)
    g_big = gamma_mt(b, 1.4)
    u = rng.next_u01(b)
    assert g_small == g_big * u ** (1.0 / 0.4)
    assert np.array_equal(a, b)


# ----------------------------------------------------------------------------- NB (S2)
def test_nb_attempts_replay_and_accounting():
    for i in range(100):
        sg, sp = state("nbg", i), state("nbp", i)
        pg, pp = _pystream(sg), _pystream(sp)
        mu, phi = 4.0 + i % 7, 0.3 + (i % 5)
        n, r = nb.nb_attempts(sg, sp, mu, phi, 10_000)
        t = 0
        while True:
            lam = (mu / phi) * py_gamma(pg, phi)
            k = py_poisson(pp, lam)
            if k >= 2:
                break
            t += 1
        assert (n, r) == (k, t) and n >= 2 and r >= 0
        assert list(map(int, sg)) == pg.end() and list(map(int, sp)) == pp.end()


def test_nb_attempts_cap():
    sg, sp = state("capg"), state("capp")
    n, r = nb.nb_attempts(sg, sp, 1e-12, 1.0, 3)
    assert (n, r) == (-1, 3)
    assert int(sp[3]) == 3  # three Poisson(~0) draws of K = 0, one uniform each


def test_nb_batch_matches_single_and_is_deterministic():
    m = 300
    keys = [str(i) for i in range(m)]
    sg = rng.derive_streams("1A.nb_gamma", "mf", "ph", 7, "", keys)
    sp = rng.derive_streams("1A.nb_poisson", "mf", "ph", 7, "", keys)
    mu = np.linspace(2.5, 40.0, m)
    phi = np.linspace(0.2, 12.0, m)[::-1].copy()
    n, rej, eg, ep = nb.nb_batch(sg, sp, mu, phi, 10_000)
    assert n.dtype == np.int32 and rej.dtype == np.int32
    assert eg.dtype == np.uint64 and eg.shape == (m, 5) and ep.shape == (m, 5)
    assert (n >= 2).all() and (rej >= 0).all()
    assert np.array_equal(eg[:, 0], sg[:, 0]) and np.array_equal(ep[:, 0], sp[:, 0])
    for i in range(0, m, 37):
        a, b = rng.new_state(*map(int, sg[i])), rng.new_state(*map(int, sp[i]))
        assert nb.nb_attempts(a, b, mu[i], phi[i], 10_000) == (n[i], rej[i])
        assert np.array_equal(a, eg[i]) and np.array_equal(b, ep[i])
    again = nb.nb_batch(sg, sp, mu, phi, 10_000)
    for x, y in zip((n, rej, eg, ep), again):
        assert np.array_equal(x, y)
    # blocks consumed == counter advance
    adv = [(((int(eg[i, 1]) << 64) | int(eg[i, 2])) - ((int(sg[i, 1]) << 64) | int(sg[i, 2])))
           % (1 << 128) for i in range(m)]
    assert adv == [int(v) for v in eg[:, 4]]
    # at least one Gamma and one Poisson per attempt
    assert (eg[:, 4] >= 2 * (rej.astype(np.uint64) + U(1))).all()
    assert (ep[:, 3] >= rej.astype(np.uint64) + U(1)).all()


# ----------------------------------------------------------------------------- statistics
N_STAT = 20_000


def _within(x, target, se, sig=4.0):
    return abs(x - target) <= sig * se


def test_std_normal_moments():
    z = _normal_many(state("nstat"), N_STAT)
    assert _within(z.mean(), 0.0, math.sqrt(1 / N_STAT))
    assert _within(z.var(), 1.0, math.sqrt(2 / N_STAT))


@pytest.mark.parametrize("alpha", [0.5, 3.0, 20.0])
def test_gamma_moments(alpha):
    st = state(f"gstat{alpha}")
    g = _gamma_many(st, alpha, N_STAT)
    assert (g > 0).all() and np.isfinite(g).all()
    assert _within(g.mean(), alpha, math.sqrt(alpha / N_STAT))
    # Var(s^2) ~ (kappa4 + 2 sigma^4) / n with kappa4 = 6 alpha for Gamma(alpha, 1)
    assert _within(g.var(), alpha, math.sqrt((6 * alpha + 2 * alpha**2) / N_STAT))
    if alpha >= 1:  # ~3 draws per MT iteration, acceptance > 0.95 here
        assert 3 * N_STAT <= int(st[3]) <= 3.3 * N_STAT


@pytest.mark.parametrize("lam", [3.0, 40.0])
def test_poisson_moments(lam):
    st = state(f"pstat{lam}")
    k = _poisson_many(st, lam, N_STAT)
    assert (k >= 0).all()
    assert _within(k.mean(), lam, math.sqrt(lam / N_STAT))
    assert _within(k.var(), lam, math.sqrt((lam + 2 * lam**2) / N_STAT))
    if lam < 10:
        assert int(st[3]) == int(k.sum()) + N_STAT


def test_determinism_same_stream_same_output():
    for f in (lambda s: _gamma_many(s, 2.5, 500), lambda s: _poisson_many(s, 40.0, 500),
              lambda s: _normal_many(s, 500)):
        a, b = state("det"), state("det")
        assert np.array_equal(f(a), f(b)) and np.array_equal(a, b)
        c = state("det", 1)
        assert not np.array_equal(f(c), f(state("det")))
