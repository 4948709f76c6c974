"""The one alias implementation: integer Vose build, Q0.32 decode (2B.S2), 3B edge variant.

Build law (chapter 2B.S2), per slice of K slots with integer masses m_i, Σ m_i = G = 2^bits
----------------------------------------------------------------------------------------------
1. ``t_i = K·m_i`` (integers; threshold G, no fractions).
2. FIFO queues in slot (key) order: ``small`` = {t_i < G}, ``large`` = {t_i >= G} (equality
   goes to large).
3. While both are non-empty: pop s from the front of small and l from the front of large;
   ``prob[s] = t_s``, ``alias[s] = l``; ``t_l -= G - t_s``; push l to the back of small if
   ``t_l < G`` else to the back of large.
4. Every slot left in a queue: ``prob = G``, ``alias = self``.
Everything is integer, so the table is exact: slot i is returned with probability m_i/G.
Many slices are built in one numba call over CSR offsets (no Python loop per slice).

Decode laws (one uniform u in (0, 1); slots local to the slice)
---------------------------------------------------------------
- **Q0.32** (2B.S2 tables, 5B site pick): ``prob_q = min(prob·2^32/G, 2^32 − 1)``;
  ``y = u·K``, ``j = ⌊y⌋`` (clamped to K−1), ``v = ⌊(y − j)·2^32⌋``; slot j if
  ``v < prob_q[j]`` else ``alias[j]``.
- **Edge, Q0.24** (3B.S3 blob, 5B edge pick; INTERFACES): ``prob_q = prob`` (threshold on the
  G = 2^24 scale, G meaning "always"); ``y = u·n``, ``j = ⌊y⌋``, accept j iff
  ``⌊(y − j)·2^24⌋ < prob_q[j]`` else ``alias[j]``; slot i = edge_seq_index i.
- Implied probability of slot i under a decode law with scale 2^S:
  ``Σ_j [(j = i)·prob_q[j] + (alias[j] = i)·(2^S − prob_q[j])] / (K·2^S)`` — `decode_numerators`
  returns the numerators; fidelity means numerator_i = m_i·K·2^S / G exactly.

Edge blob segment (INTERFACES 3B.S3): little-endian ``u32 n, u32 bits(=24), u32 0, u32 0,
u32 prob_q[n], u32 alias[n]``, padded to a multiple of 8 bytes.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .errors import EngineFailure

__all__ = ["Q32", "build_alias", "encode_q32", "build_alias_q32", "alias_pick_q32", "edge_pick",
           "pick_q32_many", "edge_pick_many", "decode_numerators", "check_fidelity",
           "pack_edge_blob", "unpack_edge_segment", "unpack_edge_blob", "EDGE_BITS"]

Q32 = 32
EDGE_BITS = 24
_TWO32 = 4294967296.0
_TWO24 = 16777216.0
_U32_MAX = (1 << 32) - 1


# --------------------------------------------------------------------------- build
@njit(cache=True)
def _build_kernel(offsets, m, G, prob, alias, small_q, large_q):
    """Fill prob (int64, G scale) and alias (uint32, local slot); return the first slice whose
    masses are negative, empty or do not sum to G, else -1."""
    n_slices = offsets.shape[0] - 1
    for s in range(n_slices):
        lo = offsets[s]
        hi = offsets[s + 1]
        K = hi - lo
        if K <= 0:
            return s
        tot = 0
        for i in range(lo, hi):
            if m[i] < 0:
                return s
            tot += m[i]
        if tot != G:
            return s
        sh = 0
        st = 0
        lh = 0
        lt = 0
        for i in range(K):
            t = K * m[lo + i]
            prob[lo + i] = t
            if t < G:
                small_q[st] = i
                st += 1
            else:
                large_q[lt] = i
                lt += 1
        while sh < st and lh < lt:
            a = small_q[sh]
            sh += 1
            b = large_q[lh]
            lh += 1
            alias[lo + a] = b
            prob[lo + b] -= G - prob[lo + a]
            if prob[lo + b] < G:
                small_q[st] = b
                st += 1
            else:
                large_q[lt] = b
                lt += 1
        for q in range(sh, st):
            i = small_q[q]
            prob[lo + i] = G
            alias[lo + i] = i
        for q in range(lh, lt):
            i = large_q[q]
            prob[lo + i] = G
            alias[lo + i] = i
    return -1


def _offsets(offsets) -> np.ndarray:
    off = np.ascontiguousarray(offsets, dtype=np.int64)
    if off.ndim != 1 or len(off) < 1 or off[0] != 0 or np.any(off[1:] < off[:-1]):
        raise ValueError("offsets must be a non-decreasing int array starting at 0")
    return off


def build_alias(offsets, m_q, bits: int = EDGE_BITS, *, code: str = "2B.S2.MASS_NOT_ON_GRID"):
    """Integer Vose tables for every CSR slice ``m_q[offsets[s]:offsets[s+1]]``.

    Returns (prob int64 on the G = 2^bits scale, alias uint32 local slot). A slice that is
    empty or whose masses do not sum to G raises EngineFailure(`code`).
    """
    if not 1 <= bits <= 31:
        raise ValueError("bits must be in 1..31")
    off = _offsets(offsets)
    m = np.ascontiguousarray(m_q, dtype=np.int64)
    if len(m) != off[-1]:
        raise ValueError("offsets[-1] must equal len(m_q)")
    prob = np.empty(len(m), np.int64)
    alias = np.empty(len(m), np.uint32)
    kmax = int(np.max(np.diff(off))) if len(off) > 1 else 0
    bad = _build_kernel(off, m, np.int64(1 << bits), prob, alias,
                        np.empty(kmax, np.int64), np.empty(2 * kmax, np.int64))
    if bad >= 0:
        lo, hi = int(off[bad]), int(off[bad + 1])
        raise EngineFailure(code, f"alias slice masses must be >= 0 and sum to 2^{bits}",
                            {"slice": bad, "n_slots": hi - lo, "sum": int(m[lo:hi].sum())})
    return prob, alias


def encode_q32(prob, bits: int = EDGE_BITS) -> np.ndarray:
    """Q0.32 accept thresholds: min(prob·2^(32−bits), 2^32 − 1) as uint32."""
    p = np.asarray(prob, dtype=np.int64) << np.int64(32 - bits)
    return np.minimum(p, _U32_MAX).astype(np.uint32)


def build_alias_q32(offsets, m_q, bits: int = EDGE_BITS, *, code: str = "2B.S2.MASS_NOT_ON_GRID"):
    """(prob_q uint32 Q0.32, alias_slot uint32) for every slice: the 2B.S2 table."""
    prob, alias = build_alias(offsets, m_q, bits, code=code)
    return encode_q32(prob, bits), alias


# --------------------------------------------------------------------------- decode (pick)
@njit(cache=True, inline="always")
def alias_pick_q32(u, prob_q, alias, lo, n):
    """Q0.32 decode of one uniform u over the slice prob_q[lo:lo+n] -> local slot."""
    y = u * n
    j = np.int64(y)
    if j >= n:
        j = n - 1
    v = np.int64((y - j) * _TWO32)
    if v < np.int64(prob_q[lo + j]):
        return j
    return np.int64(alias[lo + j])


@njit(cache=True, inline="always")
def edge_pick(u, prob_q, alias, lo, n):
    """3B edge decode (Q0.24) of one uniform u over prob_q[lo:lo+n] -> local slot (edge_seq_index)."""
    y = u * n
    j = np.int64(y)
    if j >= n:
        j = n - 1
    v = np.int64((y - j) * _TWO24)
    if v < np.int64(prob_q[lo + j]):
        return j
    return np.int64(alias[lo + j])


@njit(cache=True)
def _pick_many(u, slice_of, offsets, prob_q, alias, edge, out):
    for i in range(u.shape[0]):
        s = slice_of[i]
        lo = offsets[s]
        n = offsets[s + 1] - lo
        if edge:
            out[i] = edge_pick(u[i], prob_q, alias, lo, n)
        else:
            out[i] = alias_pick_q32(u[i], prob_q, alias, lo, n)


def _many(u, slice_of, offsets, prob_q, alias, edge):
    u = np.ascontiguousarray(u, dtype=np.float64)
    s = np.broadcast_to(np.asarray(slice_of, dtype=np.int64), u.shape).copy()
    off = _offsets(offsets)
    if s.size and (s.min() < 0 or s.max() >= len(off) - 1):
        raise IndexError("slice index outside the table")
    out = np.empty(u.shape, np.int64)
    _pick_many(u, s, off, np.ascontiguousarray(prob_q, dtype=np.uint32),
               np.ascontiguousarray(alias, dtype=np.uint32), edge, out)
    return out


def pick_q32_many(u, slice_of, offsets, prob_q, alias) -> np.ndarray:
    """Local slots for uniforms `u` in slices `slice_of` (int or array) under the Q0.32 law."""
    return _many(u, slice_of, offsets, prob_q, alias, False)


def edge_pick_many(u, slice_of, offsets, prob_q, alias) -> np.ndarray:
    """Local slots (edge_seq_index) for uniforms `u` under the Q0.24 edge law."""
    return _many(u, slice_of, offsets, prob_q, alias, True)


# --------------------------------------------------------------------------- fidelity
@njit(cache=True)
def _decode_kernel(offsets, prob_q, alias, full, num):
    for s in range(offsets.shape[0] - 1):
        lo = offsets[s]
        hi = offsets[s + 1]
        for i in range(lo, hi):
            num[i] = 0
        for j in range(lo, hi):
            p = np.int64(prob_q[j])
            num[j] += p
            num[lo + np.int64(alias[j])] += full - p


def decode_numerators(offsets, prob_q, alias, scale_bits: int = Q32) -> np.ndarray:
    """int64 numerators of each slot's implied probability; denominator K·2^scale_bits.
    scale_bits = 32 for Q0.32 tables, 24 (= EDGE_BITS) for edge tables."""
    off = _offsets(offsets)
    pq = np.ascontiguousarray(prob_q, dtype=np.uint32)
    al = np.ascontiguousarray(alias, dtype=np.uint32)
    sizes = np.repeat(np.diff(off), np.diff(off))
    if len(al) and np.any(al.astype(np.int64) >= sizes):
        raise ValueError("alias slot outside its slice")
    if np.any(pq.astype(np.int64) > (1 << scale_bits)):
        raise ValueError("prob_q beyond the scale")
    num = np.empty(len(pq), np.int64)
    _decode_kernel(off, pq, al, np.int64(1 << scale_bits), num)
    return num


def check_fidelity(offsets, m_q, prob_q, alias, bits: int = EDGE_BITS, scale_bits: int = Q32) -> np.ndarray:
    """Slice indices whose decoded probabilities differ from m_q/2^bits (empty = exact)."""
    off = _offsets(offsets)
    num = decode_numerators(off, prob_q, alias, scale_bits)
    K = np.repeat(np.diff(off), np.diff(off))
    want = np.asarray(m_q, dtype=np.int64) * K << np.int64(scale_bits - bits)
    bad_rows = np.flatnonzero(num != want)
    return np.unique(np.searchsorted(off, bad_rows, side="right") - 1)


# --------------------------------------------------------------------------- edge blob
@njit(cache=True)
def _pack_kernel(offsets, prob_q, alias, bits, seg_words, words):
    pos = 0
    for s in range(offsets.shape[0] - 1):
        lo = offsets[s]
        n = offsets[s + 1] - lo
        words[pos] = n
        words[pos + 1] = bits
        words[pos + 2] = 0
        words[pos + 3] = 0
        for i in range(n):
            words[pos + 4 + i] = prob_q[lo + i]
            words[pos + 4 + n + i] = alias[lo + i]
        for w in range(pos + 4 + 2 * n, pos + seg_words[s]):
            words[w] = 0
        pos += seg_words[s]


def pack_edge_blob(offsets, prob_q, alias, bits: int = EDGE_BITS):
    """Concatenate one segment per slice -> (blob bytes, blob_offset_bytes i64[], blob_length_bytes i64[])."""
    off = _offsets(offsets)
    n = np.diff(off)
    seg_words = 4 + 2 * n
    seg_words += seg_words % 2                          # pad each segment to 8 bytes
    starts = np.concatenate([[0], np.cumsum(seg_words)]).astype(np.int64)
    words = np.empty(int(starts[-1]), np.uint32)
    _pack_kernel(off, np.ascontiguousarray(prob_q, dtype=np.uint32),
                 np.ascontiguousarray(alias, dtype=np.uint32), np.uint32(bits), seg_words, words)
    return words.astype("<u4").tobytes(), starts[:-1] * 4, seg_words.astype(np.int64) * 4


@njit(cache=True)
def _unpack_kernel(words, w_off, w_len, bits, out_off, prob_q, alias):
    """Copy segments into CSR arrays; return the first bad segment index, else -1."""
    for s in range(w_off.shape[0]):
        p = w_off[s]
        n = np.int64(words[p])
        if (np.int64(words[p + 1]) != bits or words[p + 2] != 0 or words[p + 3] != 0 or n < 1
                or 4 + 2 * n > w_len[s] or out_off[s + 1] - out_off[s] != n):
            return s
        lo = out_off[s]
        for i in range(n):
            q = words[p + 4 + i]
            a = words[p + 4 + n + i]
            if np.int64(q) > (np.int64(1) << bits) or np.int64(a) >= n:
                return s
            prob_q[lo + i] = q
            alias[lo + i] = a
    return -1


def unpack_edge_blob(blob: bytes, offset_bytes, length_bytes, bits: int = EDGE_BITS, *,
                     code: str = "CORE.ALIAS.BLOB_INVALID"):
    """Read the segments at (offset_bytes, length_bytes) -> CSR (offsets, prob_q, alias).
    A malformed segment (header, size, threshold or alias out of range) raises `code`."""
    words = np.frombuffer(blob, dtype="<u4")
    ob = np.asarray(offset_bytes, dtype=np.int64)
    lb = np.asarray(length_bytes, dtype=np.int64)
    if (np.any(ob % 8) or np.any(lb % 8) or np.any(lb < 16) or np.any(ob < 0)
            or np.any(ob + lb > len(words) * 4)):
        bad = int(np.flatnonzero((ob % 8 != 0) | (lb % 8 != 0) | (lb < 16) | (ob < 0) | (ob + lb > len(words) * 4))[0])
        raise EngineFailure(code, "edge alias segment outside the blob or misaligned", {"segment": bad})
    w_off, w_len = ob // 4, lb // 4
    n = words[w_off].astype(np.int64)
    out_off = np.concatenate([[0], np.cumsum(n)]).astype(np.int64)
    prob_q = np.empty(int(out_off[-1]), np.uint32)
    alias = np.empty(int(out_off[-1]), np.uint32)
    bad = _unpack_kernel(words, w_off, w_len, np.int64(bits), out_off, prob_q, alias)
    if bad >= 0:
        raise EngineFailure(code, "malformed edge alias segment", {"segment": int(bad)})
    return out_off, prob_q, alias


def unpack_edge_segment(blob: bytes, offset_bytes: int, length_bytes: int, bits: int = EDGE_BITS, *,
                        code: str = "CORE.ALIAS.BLOB_INVALID"):
    """One segment -> (prob_q uint32[n], alias uint32[n])."""
    _, pq, al = unpack_edge_blob(blob, [offset_bytes], [length_bytes], bits, code=code)
    return pq, al
