"""Philox2x64-10, counters, uniforms, stream derivation and the RNG trace."""
from __future__ import annotations

import hashlib
import json
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.core import rng  # noqa: E402

U = np.uint64
M64 = (1 << 64) - 1
u64s = st.integers(min_value=0, max_value=M64)


def block(hi, lo, key):
    x0, x1 = rng.philox2x64_10(U(hi), U(lo), U(key))
    return int(x0), int(x1)


# ----------------------------------------------------------------------------- Random123 KAT
# From Random123 kat_vectors ("philox2x64 10 <ctr c0 c1> <key> <out0 out1>").
# The vector lists ctr as {c0, c1}; our call is (hi=c1, lo=c0).
KAT = [
    ((0x0000000000000000, 0x0000000000000000), 0x0000000000000000,
     (0xca00a0459843d731, 0x66c24222c9a845b5)),
    ((0xffffffffffffffff, 0xffffffffffffffff), 0xffffffffffffffff,
     (0x65b021d60cd8310f, 0x4d02f3222f86df20)),
    ((0x243f6a8885a308d3, 0x13198a2e03707344), 0xa4093822299f31d0,
     (0x0a5e742c2997341c, 0xb0f883d38000de5d)),
]


@pytest.mark.parametrize("ctr,key,expected", KAT)
def test_random123_known_answers(ctr, key, expected):
    c0, c1 = ctr
    assert block(c1, c0, key) == expected


# ----------------------------------------------------------------------------- randomgen
# randomgen.Philox(number=2, width=64, key=K, counter=C):
#   * the integer C is split low word first: ctr[0] = C & (2^64-1) (= our lo), ctr[1] = C >> 64
#     (= our hi) -- the same layout as Random123's {c0, c1};
#   * the counter is incremented BEFORE each block is generated, so the first block that
#     random_raw() returns is the block at C + 1, not at C;
#   * random_raw() returns both lanes of each block in order x0, x1.
# Hence random_raw(2n) == [x0(C+1), x1(C+1), x0(C+2), x1(C+2), ...].
def _randomgen_blocks(key, hi, lo, n):
    randomgen = pytest.importorskip("randomgen")
    g = randomgen.Philox(number=2, width=64, key=key, counter=(hi << 64) | lo)
    raw = [int(x) for x in g.random_raw(2 * n)]
    return [(raw[2 * i], raw[2 * i + 1]) for i in range(n)]


def _our_blocks(key, hi, lo, n, start=0):
    out = []
    for k in range(start, start + n):
        h, l = rng.add_counter(U(hi), U(lo), U(k))
        out.append(block(h, l, key))
    return out


def test_randomgen_convention_fixed():
    key, hi, lo = 0xa4093822299f31d0, 0x13198a2e03707344, 0x243f6a8885a308d3
    rg = _randomgen_blocks(key, hi, lo, 8)
    assert rg == _our_blocks(key, hi, lo, 8, start=1)
    # and our block at C itself is the Random123 KAT, which randomgen skips
    assert block(hi, lo, key) == KAT[2][2]


def test_randomgen_across_lo_carry():
    key, hi, lo = 0x0123456789abcdef, 7, M64 - 3
    assert _randomgen_blocks(key, hi, lo, 8) == _our_blocks(key, hi, lo, 8, start=1)


@settings(max_examples=50, deadline=None)
@given(key=u64s, hi=u64s, lo=u64s)
def test_randomgen_random(key, hi, lo):
    assert _randomgen_blocks(key, hi, lo, 3) == _our_blocks(key, hi, lo, 3, start=1)


# ----------------------------------------------------------------------------- counters
@settings(max_examples=100, deadline=None)
@given(a=u64s, b=u64s, k=u64s)
def test_add_counter_is_128bit_add(a, b, k):
    h, l = rng.add_counter(U(a), U(b), U(k))
    v = ((a << 64) | b) + k
    v &= (1 << 128) - 1
    assert (int(h), int(l)) == (v >> 64, v & M64)


def _sequential_check(key, hi, lo, n):
    s = rng.new_state(key, hi, lo)
    for k in range(n):
        h, l = rng.add_counter(U(hi), U(lo), U(k))
        x0, _ = rng.philox2x64_10(U(h), U(l), U(key))
        u_direct = rng.u01(U(x0))
        assert (int(s[1]), int(s[2])) == (int(h), int(l))
        assert rng.next_u01(s) == u_direct
    assert int(s[3]) == n and int(s[4]) == n
    v = (((hi << 64) | lo) + n) & ((1 << 128) - 1)
    assert (int(s[1]), int(s[2])) == (v >> 64, v & M64)


def test_counter_plus_k_across_lo_carry():
    _sequential_check(0xdeadbeef, 41, M64 - 3, 8)
    _sequential_check(0xdeadbeef, M64, M64 - 2, 6)  # wraps mod 2^128


@settings(max_examples=40, deadline=None)
@given(key=u64s, hi=u64s, lo=u64s, n=st.integers(min_value=1, max_value=12))
def test_counter_plus_k_random(key, hi, lo, n):
    _sequential_check(key, hi, lo, n)


@settings(max_examples=30, deadline=None)
@given(key=u64s, hi=u64s, lo=st.integers(min_value=M64 - 20, max_value=M64),
       n=st.integers(min_value=1, max_value=30))
def test_uniforms_at_matches_sequential(key, hi, lo, n):
    s = rng.new_state(key, hi, lo)
    seq = np.array([rng.next_u01(s) for _ in range(n)])
    at = rng.uniforms_at(U(key), U(hi), U(lo), n)
    assert at.dtype == np.float64 and at.shape == (n,)
    assert np.array_equal(seq, at)


def test_next_u01_pair_accounting():
    key, hi, lo = 99, 1, M64
    s = rng.new_state(key, hi, lo)
    a, b = rng.next_u01_pair(s)
    x0, x1 = block(hi, lo, key)
    assert (a, b) == (rng.u01(U(x0)), rng.u01(U(x1)))
    assert [int(v) for v in s] == [key, hi + 1, 0, 2, 1]


def test_make_state_matches_new_state():
    a = rng.make_state(U(5), U(M64), U(3))
    b = rng.new_state(5, M64, 3)
    assert a.dtype == np.uint64 and a.shape == (5,)
    assert np.array_equal(a, b)


# ----------------------------------------------------------------------------- uniforms
def test_u01_open_interval():
    lo = rng.u01(U(0))
    hi = rng.u01(U(M64))
    assert 0.0 < lo < 1.0 and 0.0 < hi < 1.0
    assert lo == 0.5 / 2**53
    # (2^53 - 1 + 0.5) rounds to 2^53 in float64, so the formula alone would give 1.0;
    # rng.u01 clamps it to the largest double below one.
    assert hi == 1.0 - 2.0**-53
    assert rng.u01(U(M64 - 2048)) == (2**53 - 2) / 2**53  # m = 2^53-2 (even): m + 0.5 -> m
    assert rng.u01(U((2**52 - 1) << 11)) == (2**52 - 0.5) / 2**53  # exact below 2^52
    assert rng.u01(U(1 << 63)) == ((1 << 52) + 0.5) / 2**53


# ----------------------------------------------------------------------------- derivation
ARGS = ("1A.nb_gamma", "a" * 64, "b" * 64, 42, "", "12345")


def _independent(family, mf, ph, seed, scen, dk):
    def uer(s):
        b = s.encode("utf-8")
        return struct.pack(">I", len(b)) + b
    msg = (uer("fraudworld.rng.v1") + uer(family) + uer(mf) + uer(ph)
           + struct.pack("<Q", seed) + uer(scen) + uer(dk))
    h = hashlib.sha256(msg).digest()
    return (int.from_bytes(h[0:8], "big"), int.from_bytes(h[8:16], "big"),
            int.from_bytes(h[16:24], "big"))


def test_derive_stream_known_answer():
    got = rng.derive_stream(*ARGS)
    assert got == _independent(*ARGS)
    assert all(isinstance(v, int) for v in got)
    # non-ASCII domain keys are UTF-8 with a byte-length prefix
    args2 = ("1A.x", "f", "p", 2**64 - 1, "scén", "Zürich")
    assert rng.derive_stream(*args2) == _independent(*args2)


def test_derive_stream_every_component_matters():
    base = rng.derive_stream(*ARGS)
    variants = [
        ("1A.nb_poisson", *ARGS[1:]),
        (ARGS[0], "c" * 64, *ARGS[2:]),
        (*ARGS[:2], "d" * 64, *ARGS[3:]),
        (*ARGS[:3], 43, *ARGS[4:]),
        (*ARGS[:4], "s1", ARGS[5]),
        (*ARGS[:5], "12346"),
        # length prefixes prevent concatenation ambiguity
        ("1A.nb_gamm", "a" + "a" * 64, *ARGS[2:]),
    ]
    seen = {base}
    for v in variants:
        s = rng.derive_stream(*v)
        assert s not in seen
        seen.add(s)


def test_derive_stream_rejects_bad_seed():
    with pytest.raises(ValueError):
        rng.derive_stream(ARGS[0], ARGS[1], ARGS[2], -1, "", "k")


def test_derive_streams_matches_single():
    keys = [str(i) for i in range(50)] + ["", "Zürich"]
    arr = rng.derive_streams(*ARGS[:5], keys)
    assert arr.dtype == np.uint64 and arr.shape == (len(keys), 3)
    for i, k in enumerate(keys):
        assert tuple(int(v) for v in arr[i]) == rng.derive_stream(*ARGS[:5], k)
    empty = rng.derive_streams(*ARGS[:5], [])
    assert empty.shape == (0, 3) and empty.dtype == np.uint64


# ----------------------------------------------------------------------------- trace
def test_trace_add_states_and_write(tmp_path):
    starts = rng.derive_streams("1A.f", "m", "p", 1, "", ["a", "b", "c"])
    ends = np.empty((3, 5), dtype=np.uint64)
    used = [2, 0, 3]
    for i in range(3):
        s = rng.new_state(*(int(v) for v in starts[i]))
        for _ in range(used[i]):
            rng.next_u01(s)
        ends[i] = s
    t = rng.RngTrace()
    t.add_states("1A.z_family", starts, ends)
    t.add("1A.a_family", 0, 0, 0)
    d = t.to_dict()
    assert list(d) == ["1A.a_family", "1A.z_family"]
    z = d["1A.z_family"]
    assert (z["events"], z["draws"], z["blocks"]) == (2, 5, 5)
    h0, l0 = int(starts[0, 1]), int(starts[0, 2])
    assert z["first_counter"] == f"{h0:016x}{l0:016x}"
    last = (((int(starts[2, 1]) << 64) | int(starts[2, 2])) + 2) & ((1 << 128) - 1)
    assert z["last_counter"] == f"{last >> 64:016x}{last & M64:016x}"
    assert len(z["first_counter"]) == 32
    assert d["1A.a_family"]["first_counter"] is None

    # accumulation: first kept, last overwritten
    t.add("1A.a_family", 1, 2, 1, first=(1, 2), last=(1, 2))
    t.add("1A.a_family", 1, 2, 1, first=(9, 9), last=(3, 4))
    a = t.to_dict()["1A.a_family"]
    assert a == {"events": 2, "draws": 4, "blocks": 2,
                 "first_counter": f"{1:016x}{2:016x}", "last_counter": f"{3:016x}{4:016x}"}

    p1, p2 = tmp_path / "x" / "t1.json", tmp_path / "t2.json"
    t.write(p1)
    t.write(p2)
    text = p1.read_text()
    assert text == p2.read_text() and text.endswith("}\n")
    assert json.loads(text) == t.to_dict()
    assert text == json.dumps(t.to_dict(), sort_keys=True, indent=2) + "\n"


def test_trace_merge_adds_counts_and_keeps_first_and_last_counters():
    from engine.core.rng import RngTrace
    a, b, m = RngTrace(), RngTrace(), RngTrace()
    a.add("X.f", 2, 4, 2, (0, 5), (0, 9))
    b.add("X.f", 1, 2, 1, (1, 0), (1, 3))
    b.add("X.g", 1, 1, 1, (2, 0), (2, 0))
    m.merge(a)
    m.merge(b.to_dict())
    d = m.to_dict()
    assert (d["X.f"]["events"], d["X.f"]["draws"], d["X.f"]["blocks"]) == (3, 6, 3)
    assert d["X.f"]["first_counter"] == f"{0:016x}{5:016x}" and d["X.f"]["last_counter"] == f"{1:016x}{3:016x}"
    assert d["X.g"] == b.to_dict()["X.g"]
