"""Hash-uniforms (untraced "mixing coins") and SHA-256 over binary rows, vectorised.

Hash-uniform (chapter 3A3B notation `hu`, INTERFACES §4): ``x = BE64(SHA256(UTF8(label|p1|p2|…))[0:8])``,
``u = ((x >> 11) + 0.5) / 2^53`` -- DESIGN's open-interval map (the chapter's (x+0.5)/2^64 can reach 1.0).
It consumes no Philox stream, so no trace entry is written. One SHA-256 per row, in the numba kernel of
engine.core.sha256 (no Python loop per row).

`sha256_binary_rows` hashes rows that are arbitrary bytes (little-endian integers, floats), which
`sha256_rows` cannot take since it reads Arrow *strings*.
"""
from __future__ import annotations

import hashlib

import numpy as np
import polars as pl

from .sha256 import _K, _batch, _midstate, sha256_rows, words_to_u64

__all__ = ["hash_uniform", "hash_uniform_one", "u64_to_u01", "sha256_binary_rows", "hex16", "u64_hash_ids"]

_INV53 = 1.0 / 9007199254740992.0
_ONE_MINUS_ULP = float.fromhex("0x1.fffffffffffffp-1")


def u64_to_u01(x: np.ndarray) -> np.ndarray:
    """((x >> 11) + 0.5) / 2^53, clamped below 1 (engine.core.rng.u01, vectorised)."""
    u = ((np.asarray(x, np.uint64) >> np.uint64(11)).astype(np.float64) + 0.5) * _INV53
    return np.minimum(u, _ONE_MINUS_ULP)


def _part(p, n: int) -> pl.Expr | pl.Series:
    if isinstance(p, (str, int, np.integer)):
        return pl.lit(str(p))
    s = p if isinstance(p, pl.Series) else pl.Series(np.asarray(p))
    if len(s) != n:
        raise ValueError("hash_uniform parts differ in length")
    return s.cast(pl.String)


def hash_uniform(label: str, *parts, n: int | None = None) -> np.ndarray:
    """u per row for message ``label|p1|p2|…``; a part is a column (Series/array) or a scalar."""
    if n is None:
        n = next((len(p) for p in parts if not isinstance(p, (str, int, np.integer))), 1)
    cols = [_part(p, n) for p in parts]
    msg = pl.select(pl.concat_str([pl.repeat(pl.lit(""), n)] + cols, separator="|")).to_series()
    # the leading empty column yields "|p1|p2…", so the label goes in the prefix without its bar
    w = sha256_rows(msg.to_arrow(), label.encode("utf-8"))
    return u64_to_u01(words_to_u64(w, 0))


def hash_uniform_one(label: str, *parts) -> float:
    """Reference scalar form (hashlib), for tests and single coins."""
    d = hashlib.sha256("|".join([label, *map(str, parts)]).encode("utf-8")).digest()
    return float(u64_to_u01(np.array([int.from_bytes(d[:8], "big")], np.uint64))[0])


def sha256_binary_rows(data: np.ndarray, offsets: np.ndarray, prefix: bytes = b"") -> np.ndarray:
    """SHA-256 of ``prefix || data[offsets[i]:offsets[i+1]]`` per row -> (n, 8) big-endian uint32 words."""
    mid, rem = _midstate(prefix)
    return _batch(mid, rem, len(prefix), np.ascontiguousarray(data, np.uint8),
                  np.ascontiguousarray(offsets, np.int64), False, _K)


def u64_hash_ids(words: np.ndarray) -> np.ndarray:
    """INTERFACES §0 id law: BE64 of digest bytes [24:32]."""
    return words_to_u64(words, 3)


def hex16(x: np.ndarray) -> np.ndarray:
    """u64 -> 16-char lower-case hex strings (display only), without a Python loop per value."""
    b = np.ascontiguousarray(np.asarray(x, np.uint64).astype(">u8")).tobytes().hex().encode("ascii")
    return np.frombuffer(b, dtype="S16").astype(str)
