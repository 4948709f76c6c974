"""Counter-based randomness: Philox2x64-10, keyed streams, open-interval uniforms.

Generator
---------
Philox2x64 with 10 rounds, exactly as Random123 (Salmon et al., SC'11):
multiplier M = 0xD2B74407B1CE6E93, Weyl key bump W = 0x9E3779B97F4A7C15. One round maps
(c0, c1; k) to (hi(M*c0) ^ k ^ c1, lo(M*c0)); the key is bumped by W between rounds
(10 rounds, 9 bumps). The 64x64->128 multiply is one LLVM i128 multiply (`_mulhilo64`, a numba
intrinsic: one `mul` on x86-64 / `umulh` on arm64, 5x faster than 32-bit halves), so everything
stays integer inside numba. Checked against the Random123 known-answer vectors (tests/test_rng.py).

Counter convention
------------------
Our 128-bit counter is written (hi, lo) = (ctr_hi, ctr_lo), value hi*2^64 + lo. Random123's
counter array is {c0 = lo, c1 = hi}: Random123 increments ctr[0] first, so "counter + k"
adds k to lo with carry into hi (`add_counter`). The block output (x0, x1) is Random123's
{out[0], out[1]}.

randomgen's ``Philox(number=2, width=64, key=K, counter=C)`` uses the same word layout
(its integer ``counter`` is split low word first into ctr[0] = lo, ctr[1] = hi), but it
*increments the counter before* generating, so its ``random_raw()`` yields
x0(C+1), x1(C+1), x0(C+2), x1(C+2), ... i.e. both lanes of each block, lane 0 first,
starting at the block at counter + 1 (not at C itself). tests/test_rng.py pins this.

Streams
-------
A stream is keyed per (family, domain key) by one SHA-256 of a length-prefixed message
(DESIGN.md section 5): key = BE64(h[0:8]), ctr_hi = BE64(h[8:16]), ctr_lo = BE64(h[16:24]).
Event k of a stream uses the block at counter + k. Kernels carry a stream as a
"state": a 1-D uint64 array ``[key, ctr_hi, ctr_lo, draws, blocks]``; each block consumed
advances the counter by one and bumps ``blocks``; ``draws`` counts the uint64 lanes used
(1 for `next_u01`, 2 for `next_u01_pair`).

Uniforms
--------
u01(x) = ((x >> 11) + 0.5) / 2^53 -- always in the open interval (0, 1). Evaluated in
float64 the formula gives exactly 1.0 for the top 2^11 values of x (m + 0.5 rounds up to
2^53); that case is clamped to 1 - 2^-53 (see `u01`).

Python-side calls: numba boxes uint64 results as Python ints, and a Python int >= 2^63
cannot be passed back into an njit function; wrap such values in np.uint64.
"""
from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

__all__ = [
    "philox2x64_10", "add_counter", "u01", "derive_stream", "derive_streams",
    "new_state", "make_state", "next_u01", "next_u01_pair", "uniforms_at", "RngTrace",
    "RNG_DOMAIN",
]

RNG_DOMAIN = "fraudworld.rng.v1"

_M = np.uint64(0xD2B74407B1CE6E93)
_W = np.uint64(0x9E3779B97F4A7C15)
_S11 = np.uint64(11)
_ONE = np.uint64(1)
_TWO = np.uint64(2)
_INV53 = 1.0 / 9007199254740992.0  # 2**-53, exact
_ONE_MINUS_ULP = float.fromhex("0x1.fffffffffffffp-1")  # 1 - 2**-53

_U64 = (1 << 64) - 1


# --------------------------------------------------------------------------- numba core
@intrinsic
def _mulhilo64(typingctx, a, b):
    """(hi, lo) of the 128-bit product of two uint64: zero-extend to i128, multiply, split."""
    sig = types.UniTuple(types.uint64, 2)(types.uint64, types.uint64)

    def codegen(context, builder, signature, args):
        i128, i64 = ir.IntType(128), ir.IntType(64)
        p = builder.mul(builder.zext(args[0], i128), builder.zext(args[1], i128))
        hi = builder.trunc(builder.lshr(p, ir.Constant(i128, 64)), i64)
        return context.make_tuple(builder, signature.return_type, [hi, builder.trunc(p, i64)])
    return sig, codegen


@njit(cache=True)
def philox2x64_10(ctr_hi, ctr_lo, key):
    """Philox2x64-10 block at counter (ctr_hi, ctr_lo) under `key` -> (x0, x1) as uint64.

    Random123 ctr = {c0 = ctr_lo, c1 = ctr_hi}; output = {out[0], out[1]}.
    """
    c0 = np.uint64(ctr_lo)
    c1 = np.uint64(ctr_hi)
    k = np.uint64(key)
    for r in range(10):
        if r > 0:
            k = k + _W
        hi, lo = _mulhilo64(_M, c0)
        c0 = hi ^ k ^ c1
        c1 = lo
    return c0, c1


@njit(cache=True)
def add_counter(hi, lo, k):
    """128-bit (hi, lo) + uint64 k, mod 2^128 -> (hi, lo)."""
    h = np.uint64(hi)
    l0 = np.uint64(lo)
    l1 = l0 + np.uint64(k)
    if l1 < l0:
        h = h + _ONE
    return h, l1


@njit(cache=True)
def u01(x):
    """Open-interval uniform ((x >> 11) + 0.5) / 2^53 as float64; 0 < u < 1.

    In float64, m + 0.5 (m = x >> 11) is exact only for m < 2^52; above that it rounds
    half-to-even, and for m = 2^53 - 1 it rounds up to 2^53, i.e. u = 1.0. That single
    case (the top 2^11 values of x, probability 2^-53) is clamped to the largest double
    below one, 1 - 2^-53, so that 0 < u < 1 holds for every x.
    """
    u = (np.float64(np.uint64(x) >> _S11) + 0.5) * _INV53
    if u >= 1.0:
        u = _ONE_MINUS_ULP
    return u


@njit(cache=True)
def make_state(key, hi, lo):
    """Stream state [key, ctr_hi, ctr_lo, draws=0, blocks=0] (uint64[5])."""
    st = np.zeros(5, dtype=np.uint64)
    st[0] = np.uint64(key)
    st[1] = np.uint64(hi)
    st[2] = np.uint64(lo)
    return st


def new_state(key: int, hi: int, lo: int) -> np.ndarray:
    """Python-side constructor of a stream state (accepts Python ints up to 2^64-1)."""
    return np.array([int(key), int(hi), int(lo), 0, 0], dtype=np.uint64)


@njit(cache=True)
def next_u01(st):
    """One block at the current counter; advance by 1; return u01(x0) (lane 1 discarded)."""
    x0, x1 = philox2x64_10(st[1], st[2], st[0])
    h, l = add_counter(st[1], st[2], _ONE)
    st[1] = h
    st[2] = l
    st[3] += _ONE
    st[4] += _ONE
    return u01(x0)


@njit(cache=True)
def next_u01_pair(st):
    """One block at the current counter; advance by 1; return (u01(x0), u01(x1))."""
    x0, x1 = philox2x64_10(st[1], st[2], st[0])
    h, l = add_counter(st[1], st[2], _ONE)
    st[1] = h
    st[2] = l
    st[3] += _TWO
    st[4] += _ONE
    return u01(x0), u01(x1)


@njit(cache=True)
def uniforms_at(key, hi, lo, n):
    """float64[n]: element k is u01(x0) of the block at counter + k."""
    out = np.empty(n, dtype=np.float64)
    h = np.uint64(hi)
    l = np.uint64(lo)
    kk = np.uint64(key)
    for i in range(n):
        x0, x1 = philox2x64_10(h, l, kk)
        out[i] = u01(x0)
        h, l = add_counter(h, l, _ONE)
    return out


# --------------------------------------------------------------------------- derivation
def _uer(s: str) -> bytes:
    b = s.encode("utf-8")
    return struct.pack(">I", len(b)) + b


def _le64(seed: int) -> bytes:
    seed = int(seed)
    if not 0 <= seed <= _U64:
        raise ValueError(f"seed must be a uint64, got {seed}")
    return struct.pack("<Q", seed)


def _prefix(family_id: str, manifest_fingerprint: str, parameter_hash: str, seed: int,
            scenario_id: str) -> hashlib._Hash:
    h = hashlib.sha256()
    h.update(_uer(RNG_DOMAIN))
    h.update(_uer(family_id))
    h.update(_uer(manifest_fingerprint))
    h.update(_uer(parameter_hash))
    h.update(_le64(seed))
    h.update(_uer(scenario_id or ""))
    return h


def derive_stream(family_id: str, manifest_fingerprint: str, parameter_hash: str, seed: int,
                  scenario_id: str, domain_key: str) -> tuple[int, int, int]:
    """(key, ctr_hi, ctr_lo) as Python ints for one (family, domain key)."""
    h = _prefix(family_id, manifest_fingerprint, parameter_hash, seed, scenario_id)
    h.update(_uer(domain_key))
    d = h.digest()
    key, hi, lo = struct.unpack(">QQQ", d[:24])
    return key, hi, lo


def derive_streams(family_id: str, manifest_fingerprint: str, parameter_hash: str, seed: int,
                   scenario_id: str, domain_keys) -> np.ndarray:
    """uint64 (n, 3) array of (key, ctr_hi, ctr_lo), one SHA-256 per domain key.

    `domain_keys` is a sequence of str or an Arrow string array; the common prefix is hashed
    once and the per-key tails in a numba kernel (engine.core.sha256), so there is no Python
    loop per key. `derive_stream` (hashlib) is the reference it is tested against.
    """
    import pyarrow as pa

    from .sha256 import sha256_rows, words_to_u64
    prefix = (_uer(RNG_DOMAIN) + _uer(family_id) + _uer(manifest_fingerprint) + _uer(parameter_hash)
              + _le64(seed) + _uer(scenario_id or ""))
    keys = domain_keys if isinstance(domain_keys, (pa.Array, pa.ChunkedArray)) else pa.array(domain_keys, pa.string())
    w = sha256_rows(keys, prefix, uer=True)
    return np.column_stack([words_to_u64(w, 0), words_to_u64(w, 1), words_to_u64(w, 2)]).astype(np.uint64)


# --------------------------------------------------------------------------- trace
def _hex128(hi: int, lo: int) -> str:
    return f"{int(hi):016x}{int(lo):016x}"


def _pair(c) -> tuple[int, int] | None:
    if c is None:
        return None
    return int(c[0]), int(c[1])


def _unhex(h: str | None) -> tuple[int, int] | None:
    return None if h is None else (int(h[:16], 16), int(h[16:], 16))


class RngTrace:
    """Per-family RNG accounting written to results/<SEG>/rng/<state>.trace.json.

    Per family: ``events`` (number of streams -- or caller-defined events -- that consumed
    at least one block), ``draws`` (uint64 lanes used), ``blocks`` (Philox blocks consumed),
    ``first_counter`` (starting counter of the first consuming stream, in row order) and
    ``last_counter`` (the counter of the last block consumed, i.e. end counter - 1 of the
    last consuming stream). Counters are 32 hex chars: ``f"{hi:016x}{lo:016x}"``; they are
    null when the family consumed nothing.
    """

    def __init__(self) -> None:
        self._fam: dict[str, dict] = {}

    def _entry(self, family: str) -> dict:
        e = self._fam.get(family)
        if e is None:
            e = {"events": 0, "draws": 0, "blocks": 0, "first_counter": None, "last_counter": None}
            self._fam[family] = e
        return e

    def add(self, family: str, events: int, draws: int, blocks: int,
            first: tuple[int, int] | None = None, last: tuple[int, int] | None = None) -> None:
        """Accumulate counts; `first` is kept from the first call that gives one, `last`
        is overwritten by every call that gives one."""
        e = self._entry(family)
        e["events"] += int(events)
        e["draws"] += int(draws)
        e["blocks"] += int(blocks)
        f = _pair(first)
        if f is not None and e["first_counter"] is None:
            e["first_counter"] = _hex128(*f)
        l = _pair(last)
        if l is not None:
            e["last_counter"] = _hex128(*l)

    def add_states(self, family: str, start_streams: np.ndarray, end_states: np.ndarray) -> None:
        """Accumulate from per-stream start rows (n, 3) and end states (n, 5).

        events = number of streams that consumed >= 1 block; draws/blocks = column sums.
        A family that consumed nothing is still recorded (zeros, null counters).
        """
        start_streams = np.asarray(start_streams, dtype=np.uint64).reshape(-1, 3)
        end_states = np.asarray(end_states, dtype=np.uint64).reshape(-1, 5)
        if start_streams.shape[0] != end_states.shape[0]:
            raise ValueError("start_streams and end_states differ in length")
        used = np.flatnonzero(end_states[:, 4] > 0)
        draws = int(end_states[:, 3].sum(dtype=np.uint64)) if len(end_states) else 0
        blocks = int(end_states[:, 4].sum(dtype=np.uint64)) if len(end_states) else 0
        first = last = None
        if len(used):
            i0, i1 = int(used[0]), int(used[-1])
            first = (int(start_streams[i0, 1]), int(start_streams[i0, 2]))
            end = ((int(end_states[i1, 1]) << 64) | int(end_states[i1, 2])) - 1
            end &= (1 << 128) - 1
            last = (end >> 64, end & _U64)
        self.add(family, len(used), draws, blocks, first, last)

    def merge(self, other: RngTrace | dict) -> None:
        """Add another trace (or its `to_dict()`/trace file) that came after this one: counts add up,
        the first counter stays the earliest, the last becomes the other's (scenarios, shards)."""
        d = other.to_dict() if isinstance(other, RngTrace) else other
        for fam, e in d.items():
            self.add(fam, e["events"], e["draws"], e["blocks"], _unhex(e.get("first_counter")),
                     _unhex(e.get("last_counter")))

    def to_dict(self) -> dict:
        return {f: dict(self._fam[f]) for f in sorted(self._fam)}

    def write(self, path) -> None:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(self.to_dict(), sort_keys=True, indent=2) + "\n", encoding="utf-8")
