"""The numba SHA-256 batch kernel against hashlib."""
from __future__ import annotations

import hashlib

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.core.sha256 import sha256_rows, words_to_u64


@settings(max_examples=80, deadline=None)
@given(st.lists(st.text(max_size=150), min_size=1, max_size=20), st.binary(max_size=300), st.booleans())
def test_matches_hashlib(rows, prefix, uer):
    words = sha256_rows(pa.array(rows, pa.string()), prefix, uer)
    for i, r in enumerate(rows):
        b = r.encode()
        want = hashlib.sha256(prefix + (len(b).to_bytes(4, "big") if uer else b"") + b).digest()
        assert words[i].astype(">u4").tobytes() == want


def test_block_boundaries_and_words():
    rows = ["x" * n for n in (0, 55, 56, 63, 64, 119, 120, 128)]
    words = sha256_rows(pa.array(rows))
    for i, r in enumerate(rows):
        d = hashlib.sha256(r.encode()).digest()
        assert int(words_to_u64(words[i:i + 1], 3)[0]) == int.from_bytes(d[24:32], "big")


def test_sliced_and_chunked_arrays():
    arr = pa.chunked_array([pa.array(["a", "bb"]), pa.array(["ccc"])])
    w = sha256_rows(arr.slice(1))
    assert w[1].astype(">u4").tobytes() == hashlib.sha256(b"ccc").digest()
