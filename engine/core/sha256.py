"""Batch SHA-256 in numba: one digest per row of an Arrow string column, no Python loop.

Used where a hash is needed per merchant, pair or site (stream keys, site ids): the rows'
bytes come straight from the Arrow buffers, a common prefix is compressed once (midstate),
and each row's tail is padded and compressed in the kernel. Checked against hashlib.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
from numba import njit

_K = np.array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
], dtype=np.uint32)
_IV = np.array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19],
               dtype=np.uint32)


@njit(cache=True, inline="always")
def _rotr(x, n):
    return np.uint32((x >> np.uint32(n)) | (x << np.uint32(32 - n)))


@njit(cache=True)
def _compress(state, block, k):
    """One 64-byte block into the 8-word state (in place)."""
    w = np.empty(64, np.uint32)
    for t in range(16):
        w[t] = (np.uint32(block[4 * t]) << np.uint32(24)) | (np.uint32(block[4 * t + 1]) << np.uint32(16)) \
            | (np.uint32(block[4 * t + 2]) << np.uint32(8)) | np.uint32(block[4 * t + 3])
    for t in range(16, 64):
        s0 = _rotr(w[t - 15], 7) ^ _rotr(w[t - 15], 18) ^ (w[t - 15] >> np.uint32(3))
        s1 = _rotr(w[t - 2], 17) ^ _rotr(w[t - 2], 19) ^ (w[t - 2] >> np.uint32(10))
        w[t] = np.uint32(w[t - 16] + s0 + w[t - 7] + s1)
    a, b, c, d, e, f, g, h = state[0], state[1], state[2], state[3], state[4], state[5], state[6], state[7]
    for t in range(64):
        s1 = _rotr(e, 6) ^ _rotr(e, 11) ^ _rotr(e, 25)
        ch = (e & f) ^ (~e & g)
        t1 = np.uint32(h + s1 + ch + k[t] + w[t])
        s0 = _rotr(a, 2) ^ _rotr(a, 13) ^ _rotr(a, 22)
        maj = (a & b) ^ (a & c) ^ (b & c)
        t2 = np.uint32(s0 + maj)
        h, g, f, e, d, c, b, a = g, f, e, np.uint32(d + t1), c, b, a, np.uint32(t1 + t2)
    state[0] += a
    state[1] += b
    state[2] += c
    state[3] += d
    state[4] += e
    state[5] += f
    state[6] += g
    state[7] += h


@njit(cache=True)
def _batch(mid, rem, prefix_len, data, offsets, uer, k):
    """Digest of prefix || [BE32 len] || row bytes, for each row; returns (n, 8) uint32 words."""
    n = offsets.shape[0] - 1
    out = np.empty((n, 8), np.uint32)
    buf = np.zeros(128 + 4 + (np.max(offsets[1:] - offsets[:-1]) if n else 0) + 64, np.uint8)
    for i in range(n):
        a, b = offsets[i], offsets[i + 1]
        ln = b - a
        m = 0
        for j in range(rem.shape[0]):
            buf[m] = rem[j]
            m += 1
        if uer:
            buf[m] = (ln >> 24) & 0xFF
            buf[m + 1] = (ln >> 16) & 0xFF
            buf[m + 2] = (ln >> 8) & 0xFF
            buf[m + 3] = ln & 0xFF
            m += 4
        for j in range(a, b):
            buf[m] = data[j]
            m += 1
        total_bits = np.uint64(prefix_len + (m - rem.shape[0])) * np.uint64(8)
        buf[m] = 0x80
        m += 1
        while m % 64 != 56:
            buf[m] = 0
            m += 1
        for j in range(8):
            buf[m + j] = np.uint8((total_bits >> np.uint64(56 - 8 * j)) & np.uint64(0xFF))
        m += 8
        st = mid.copy()
        for blk in range(0, m, 64):
            _compress(st, buf[blk:blk + 64], k)
        out[i] = st
    return out


def _midstate(prefix: bytes) -> tuple[np.ndarray, np.ndarray]:
    st = _IV.copy()
    full = len(prefix) - len(prefix) % 64
    p = np.frombuffer(prefix, np.uint8)
    for blk in range(0, full, 64):
        _compress(st, p[blk:blk + 64], _K)
    return st, p[full:].copy()


def sha256_rows(rows: pa.Array | pa.ChunkedArray, prefix: bytes = b"", uer: bool = False) -> np.ndarray:
    """SHA-256 of `prefix || row` (or `prefix || BE32(len) || row` with `uer`) per string row,
    as (n, 8) big-endian uint32 words."""
    arr = rows.combine_chunks() if isinstance(rows, pa.ChunkedArray) else rows
    arr = arr.cast(pa.large_string())
    if arr.null_count:
        raise ValueError("null row in sha256_rows")
    _, off_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(off_buf, np.int64)[arr.offset:arr.offset + len(arr) + 1]
    data = np.frombuffer(data_buf, np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    mid, rem = _midstate(prefix)
    return _batch(mid, rem, len(prefix), data, offsets.astype(np.int64), uer, _K)


def words_to_u64(words: np.ndarray, i: int) -> np.ndarray:
    """BE64 of digest bytes [8i, 8i+8) from (n, 8) uint32 words."""
    return (words[:, 2 * i].astype(np.uint64) << np.uint64(32)) | words[:, 2 * i + 1].astype(np.uint64)
