"""engine.core.alias: integer Vose build (2B.S2), Q0.32 and edge (Q0.24) decode laws, edge blob."""
from __future__ import annotations

import math
import struct
from collections import deque
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.core import alias as A
from engine.core.errors import EngineFailure
from engine.core.rng import uniforms_at

G = 1 << 24


# --------------------------------------------------------------------------- pure-Python references
def ref_build(m: list[int], G: int = G) -> tuple[list[int], list[int]]:
    """The chapter's 2B.S2 steps 1-4 with deques."""
    K = len(m)
    t = [K * x for x in m]
    prob, alias = [0] * K, [0] * K
    small = deque(i for i in range(K) if t[i] < G)
    large = deque(i for i in range(K) if t[i] >= G)
    while small and large:
        s, l = small.popleft(), large.popleft()
        prob[s], alias[s] = t[s], l
        t[l] -= G - t[s]
        (small if t[l] < G else large).append(l)
    for i in list(small) + list(large):
        prob[i], alias[i] = G, i
    return prob, alias


def ref_implied(prob_q: list[int], alias: list[int], scale_bits: int) -> list[Fraction]:
    """Exact per-slot probability of a table under a decode law with scale 2^scale_bits."""
    K, full = len(prob_q), 1 << scale_bits
    p = [Fraction(0)] * K
    for j in range(K):
        p[j] += Fraction(prob_q[j], K * full)
        p[alias[j]] += Fraction(full - prob_q[j], K * full)
    return p


def ref_pick(u: float, prob_q, alias, scale_bits: int) -> int:
    """The decode law in Python floats (same IEEE operations as the kernel)."""
    n = len(prob_q)
    y = u * n
    j = min(int(y), n - 1)
    v = math.floor((y - j) * float(1 << scale_bits))
    return j if v < prob_q[j] else alias[j]


def on_grid(w: list[int]) -> list[int]:
    """Positive-total integer weights -> masses summing to G (floor, rest on the largest)."""
    W = sum(w)
    m = [x * G // W for x in w]
    m[w.index(max(w))] += G - sum(m)
    return m


def csr(slices: list[list[int]]):
    off = np.concatenate([[0], np.cumsum([len(s) for s in slices])]).astype(np.int64)
    return off, np.array([x for s in slices for x in s], np.uint32)


def chi2_sf(x: float, df: int) -> float:
    """Upper tail of chi-square = regularised upper incomplete gamma Q(df/2, x/2)
    (series below a+1, Lentz continued fraction above; Numerical Recipes 6.2)."""
    a, x = df / 2.0, x / 2.0
    if x <= 0:
        return 1.0
    lg = math.lgamma(a)
    if x < a + 1:
        s = term = 1.0 / a
        ap = a
        for _ in range(10_000):
            ap += 1
            term *= x / ap
            s += term
            if abs(term) < abs(s) * 1e-15:
                break
        return 1.0 - s * math.exp(-x + a * math.log(x) - lg)
    b = x + 1 - a
    c, d = 1e300, 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = 1e-300 if abs(d) < 1e-300 else d
        c = b + an / c
        c = 1e-300 if abs(c) < 1e-300 else c
        d = 1 / d
        h *= d * c
        if abs(d * c - 1) < 1e-15:
            break
    return math.exp(-x + a * math.log(x) - lg) * h


def test_chi2_sf_known_values():
    # scipy.stats.chi2.sf reference values
    assert abs(chi2_sf(3.841458820694124, 1) - 0.05) < 1e-9
    assert abs(chi2_sf(18.307038053275146, 10) - 0.05) < 1e-9
    assert abs(chi2_sf(10.0, 20) - 0.9681719426208788) < 1e-9


FIXED = [
    [G],                                                     # single site
    [G // 2, G // 4, G // 8, G // 8],
    on_grid([1] * 7),                                        # 2^24 not divisible by 7
    [0, G - 5, 0, 5],                                        # zero masses and a near-zero one
    [0, G - 5000, 0, 5000],
    on_grid([int(1000 / (k + 1) ** 1.3) + 1 for k in range(50)]),  # heavy tail
    on_grid([97 + (k * 37) % 11 for k in range(300)]),       # near-uniform, many slots
]


# --------------------------------------------------------------------------- build and exact decode
def test_fixed_slices_match_reference_and_decode_exactly():
    off, m = csr(FIXED)
    prob, alias = A.build_alias(off, m)
    pq, al = A.build_alias_q32(off, m)
    assert np.array_equal(al, alias) and pq.dtype == np.uint32 and alias.dtype == np.uint32
    for s, ms in enumerate(FIXED):
        lo, hi = off[s], off[s + 1]
        rp, ra = ref_build(ms)
        assert prob[lo:hi].tolist() == rp and alias[lo:hi].tolist() == ra
        want = [Fraction(x, G) for x in ms]
        assert ref_implied(pq[lo:hi].tolist(), ra, 32) == want           # Q0.32 law
        assert ref_implied(rp, ra, 24) == want                           # edge law
    assert len(A.check_fidelity(off, m, pq, al, 24, 32)) == 0
    assert len(A.check_fidelity(off, m, prob, alias, 24, 24)) == 0
    num = A.decode_numerators(off, pq, al, 32)
    K = np.repeat(np.diff(off), np.diff(off))
    assert np.array_equal(num, m.astype(np.int64) * K << 8)


def test_hand_worked_table():
    """t = [2G, G, G/2, G/2]: small = [2, 3], large = [0, 1]; l goes to the back of its queue."""
    prob, alias = A.build_alias([0, 4], [G // 2, G // 4, G // 8, G // 8])
    assert prob.tolist() == [G, G // 2, G // 2, G // 2] and alias.tolist() == [0, 0, 0, 1]
    pq = A.encode_q32(prob)
    assert pq.tolist() == [2**32 - 1, 2**31, 2**31, 2**31]


weights = st.lists(st.integers(0, 2000), min_size=1, max_size=60).filter(lambda w: sum(w) > 0)


@settings(max_examples=60, deadline=None)
@given(st.lists(weights, min_size=1, max_size=8))
def test_hypothesis_slices_decode_exactly(ws):
    slices = [on_grid(w) for w in ws]
    off, m = csr(slices)
    prob, alias = A.build_alias(off, m)
    pq = A.encode_q32(prob)
    for s, ms in enumerate(slices):
        lo, hi = off[s], off[s + 1]
        rp, ra = ref_build(ms)
        assert prob[lo:hi].tolist() == rp and alias[lo:hi].tolist() == ra
        assert ref_implied(pq[lo:hi].tolist(), ra, 32) == [Fraction(x, G) for x in ms]
    assert len(A.check_fidelity(off, m, pq, alias)) == 0
    # batch independence: each slice alone builds the same table
    p1, a1 = A.build_alias([0, len(slices[-1])], slices[-1])
    assert np.array_equal(p1, prob[off[-2]:]) and np.array_equal(a1, alias[off[-2]:])


def test_fidelity_flags_a_tampered_slot():
    off, m = csr(FIXED)
    pq, al = A.build_alias_q32(off, m)
    pq2 = pq.copy()
    pq2[off[4] + 3] -= 1
    assert A.check_fidelity(off, m, pq2, al).tolist() == [4]
    assert len(FIXED[4]) == 4 and FIXED[4][3] == 5000


def test_bad_masses_raise_named_code():
    with pytest.raises(EngineFailure) as e:
        A.build_alias([0, 2, 4], [G // 2, G // 2, G // 2, G // 2 - 1])
    assert e.value.code == "2B.S2.MASS_NOT_ON_GRID" and e.value.context["slice"] == 1
    with pytest.raises(EngineFailure) as e:
        A.build_alias([0, 0, 1], [G], code="3B.S3.EDGE_MASS_NOT_ON_GRID")
    assert e.value.code == "3B.S3.EDGE_MASS_NOT_ON_GRID" and e.value.context["slice"] == 0


# --------------------------------------------------------------------------- draws
def _counts_ok(slots: np.ndarray, ms: list[int], n: int) -> float:
    counts = np.bincount(slots, minlength=len(ms))
    assert len(counts) == len(ms)
    exp = np.array(ms, float) / G * n
    assert np.all(counts[np.array(ms) == 0] == 0)           # zero mass: never drawn
    big = exp >= 5
    obs_b, exp_b = counts[big].astype(float), exp[big]
    if (~big).any():                  # pool the small-expectation slots (into the largest bin if < 5)
        o, e = counts[~big].sum(), exp[~big].sum()
        if e >= 5:
            obs_b, exp_b = np.append(obs_b, o), np.append(exp_b, e)
        else:
            k = int(np.argmax(exp_b))
            obs_b[k] += o
            exp_b[k] += e
    if len(exp_b) < 2:
        return 1.0
    stat = float(((obs_b - exp_b) ** 2 / exp_b).sum())
    return chi2_sf(stat, len(exp_b) - 1)


@pytest.mark.parametrize("law", ["q32", "edge"])
def test_million_draws_reproduce_masses(law):
    off, m = csr(FIXED)
    prob, alias = A.build_alias(off, m)
    pq = A.encode_q32(prob) if law == "q32" else prob.astype(np.uint32)
    pick = A.pick_q32_many if law == "q32" else A.edge_pick_many
    n = 1_000_000
    for s, ms in enumerate(FIXED):
        u = uniforms_at(np.uint64(0x5EED + s), np.uint64(7), np.uint64(s), n)
        slots = pick(u, s, off, pq, alias)
        p = _counts_ok(slots, ms, n)
        assert p > 0.001, (s, p)


def test_pick_equals_python_law_for_every_u():
    """Kernel decode = the law in Python floats, on random u and on the awkward ones."""
    off, m = csr(FIXED)
    prob, alias = A.build_alias(off, m)
    pq = A.encode_q32(prob)
    u = uniforms_at(np.uint64(99), np.uint64(0), np.uint64(0), 20_000)
    edge_u = np.array([float.fromhex("0x1.fffffffffffffp-1"), 2.0**-53, 0.5, 1 / 3, 0.25, 0.75])
    for s in range(len(FIXED)):
        lo, hi = off[s], off[s + 1]
        K = hi - lo
        uu = np.concatenate([u, edge_u, (np.arange(K) + 0.5) / K, np.nextafter(np.arange(1, K + 1) / K, 0)])
        got_q = A.pick_q32_many(uu, s, off, pq, alias)
        got_e = A.edge_pick_many(uu, s, off, prob.astype(np.uint32), alias)
        pl, al, ql = pq[lo:hi].tolist(), alias[lo:hi].tolist(), prob[lo:hi].tolist()
        assert got_q.tolist() == [ref_pick(x, pl, al, 32) for x in uu.tolist()]
        assert got_e.tolist() == [ref_pick(x, ql, al, 24) for x in uu.tolist()]
        assert got_q.min() >= 0 and got_q.max() < K


def test_scalar_picks_inside_numba():
    from numba import njit

    @njit
    def kern(u, pq, pe, al, lo, n):
        out = np.empty((2, u.shape[0]), np.int64)
        for i in range(u.shape[0]):
            out[0, i] = A.alias_pick_q32(u[i], pq, al, lo, n)
            out[1, i] = A.edge_pick(u[i], pe, al, lo, n)
        return out

    off, m = csr(FIXED)
    prob, alias = A.build_alias(off, m)
    pq = A.encode_q32(prob)
    u = uniforms_at(np.uint64(3), np.uint64(0), np.uint64(0), 1000)
    q, e = kern(u, pq, prob.astype(np.uint32), alias, off[4], off[5] - off[4])
    assert np.array_equal(q, A.pick_q32_many(u, 4, off, pq, alias))
    assert np.array_equal(e, A.edge_pick_many(u, 4, off, prob.astype(np.uint32), alias))


# --------------------------------------------------------------------------- 3B edge blob
def test_edge_blob_layout_and_round_trip():
    off, m = csr(FIXED)
    prob, alias = A.build_alias(off, m)
    pe = prob.astype(np.uint32)
    blob, ob, lb = A.pack_edge_blob(off, pe, alias)
    n = np.diff(off)
    assert lb.tolist() == (16 + 8 * n).tolist() and np.all(ob % 8 == 0) and np.all(lb % 8 == 0)
    assert ob.tolist() == np.concatenate([[0], np.cumsum(lb)[:-1]]).tolist() and len(blob) == lb.sum()
    # segment 1 by hand: u32 n, u32 24, 0, 0, prob_q[n], alias[n]
    k = int(n[1])
    seg = struct.unpack_from(f"<4I{k}I{k}I", blob, int(ob[1]))
    assert seg[:4] == (k, 24, 0, 0)
    assert list(seg[4:4 + k]) == pe[off[1]:off[2]].tolist() and list(seg[4 + k:]) == alias[off[1]:off[2]].tolist()
    o2, p2, a2 = A.unpack_edge_blob(blob, ob, lb)
    assert np.array_equal(o2, off) and np.array_equal(p2, pe) and np.array_equal(a2, alias)
    p3, a3 = A.unpack_edge_segment(blob, int(ob[4]), int(lb[4]))
    assert np.array_equal(p3, pe[off[4]:off[5]]) and np.array_equal(a3, alias[off[4]:off[5]])
    # segments in any order, any subset
    o4, p4, _ = A.unpack_edge_blob(blob, ob[::-1], lb[::-1])
    assert np.array_equal(p4[:o4[1]], pe[off[-2]:])
    assert len(A.check_fidelity(o2, m, p2, a2, 24, 24)) == 0


def test_edge_blob_rejects_corruption():
    off, m = csr(FIXED[:3])
    prob, alias = A.build_alias(off, m)
    blob, ob, lb = A.pack_edge_blob(off, prob.astype(np.uint32), alias)
    code = "5B.S4.EDGE_ALIAS_BLOB_INVALID"
    bad_bits = bytearray(blob)
    struct.pack_into("<I", bad_bits, int(ob[1]) + 4, 23)
    bad_alias = bytearray(blob)
    k = int(off[2] - off[1])
    struct.pack_into("<I", bad_alias, int(ob[1]) + 16 + 4 * k, k)       # alias[0] = n: out of range
    for b, o, l in [(bytes(bad_bits), ob, lb), (bytes(bad_alias), ob, lb), (blob, ob + 4, lb),
                    (blob, ob, lb + 8 * 1000), (blob[:-8], ob, lb)]:
        with pytest.raises(EngineFailure) as e:
            A.unpack_edge_blob(b, o, l, code=code)
        assert e.value.code == code
