"""3B.S3 edge alias tables (RNG-free): quantise, integer Vose (engine.core.alias), blob + index, universe hash.

Per merchant, edges in edge_seq_index order (slot i = edge_seq_index i): M_i = lrr(2^24, edge_weight) with
the one largest-remainder law (ties to the lower edge_seq_index), the integer Vose table, packed into the
INTERFACES segment `u32 n, u32 24, 0, 0, prob_q[n], alias[n]`, 8-byte aligned, merchants in merchant_id order.
edge_universe_hash = sha256(raw digests of the components in name order) (chapter B3 S3 step 5).
"""
from __future__ import annotations

import hashlib
from typing import NamedTuple

import numpy as np
import polars as pl

from engine.core import alias
from engine.core.errors import EngineFailure
from engine.core.hash_uniform import sha256_binary_rows
from engine.core.integerise import group_offsets, split_float

G_BITS = alias.EDGE_BITS
RESIDUE_DP = 8
LAYOUT_VERSION = "3B.alias.v1"
COMPONENTS = ("alias_layout_policy", "cdn_policy", "edge_alias_blob", "edge_alias_index", "edge_catalogue_global",
              "rng_policy", "tile_surface")


INDEX_SCHEMA = {"scope": pl.String, "merchant_id": pl.UInt64, "blob_offset_bytes": pl.Int64, "blob_length_bytes": pl.Int64,
                "edge_count_total": pl.Int32, "alias_table_length": pl.Int32, "merchant_alias_checksum": pl.String}


class AliasTables(NamedTuple):
    blob: bytes
    index: pl.DataFrame        # scope MERCHANT rows then one GLOBAL row
    header: dict
    offsets: np.ndarray        # CSR over merchants (edges in edge_seq_index order)
    m_q: np.ndarray            # quantised masses on 2^24
    prob_q: np.ndarray
    alias: np.ndarray
    max_abs_delta: float       # max |decoded p - edge_weight| (gate V11)


def quantise(cat: pl.DataFrame) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    """Edges sorted (merchant_id, edge_seq_index), CSR offsets, M_i on the 2^24 grid (Σ = 2^24 per merchant)."""
    d = cat.select("merchant_id", "edge_seq_index", "edge_weight").sort("merchant_id", "edge_seq_index")
    off = group_offsets(d, ["merchant_id"])
    w = d.with_columns((pl.col("edge_weight") / pl.col("edge_weight").sum().over("merchant_id")).alias("p"))["p"]
    m, _, _ = split_float(w.to_numpy(), off, np.full(len(off) - 1, 1 << G_BITS, np.int64), RESIDUE_DP)
    return d, off, m


def build_tables(cat: pl.DataFrame, code: str = "3B.S3") -> AliasTables:
    d, off, m = quantise(cat)
    w = d["edge_weight"].to_numpy()
    sizes = np.diff(off)
    if np.any(np.abs(m / float(1 << G_BITS) - w) > 1e-6):
        raise EngineFailure(f"{code}.QUANTISATION_FAILED", "a quantised weight differs from edge_weight by > 1e-6", {})
    prob, al = alias.build_alias(off, m, G_BITS, code=f"{code}.ALIAS_CONSTRUCTION_FAILED")
    prob_q = prob.astype(np.uint32)
    if len(alias.check_fidelity(off, m, prob_q, al, G_BITS, G_BITS)):
        raise EngineFailure(f"{code}.ALIAS_DISTRIBUTION_INCONSISTENT", "decoded table differs from the quantised masses", {})
    num = alias.decode_numerators(off, prob_q, al, G_BITS)
    delta = float(np.max(np.abs(num / (np.repeat(sizes, sizes) * float(1 << G_BITS)) - w))) if len(w) else 0.0
    if delta > 1e-6:
        raise EngineFailure(f"{code}.ALIAS_DISTRIBUTION_INCONSISTENT", "alias fidelity above 1e-6", {"max_abs_delta": delta})
    blob, ob, lb = alias.pack_edge_blob(off, prob_q, al, G_BITS)
    words = np.frombuffer(blob, np.uint8)
    seg_sha = sha256_binary_rows(words, np.append(ob, ob[-1] + lb[-1]) if len(ob) else np.zeros(1, np.int64))
    seg_hex = np.frombuffer(seg_sha.astype(">u4").tobytes().hex().encode(), dtype="S64").astype(str)
    blob_sha = hashlib.sha256(blob).hexdigest()
    mids = d["merchant_id"].gather(off[:-1]) if len(off) > 1 else pl.Series([], dtype=pl.UInt64)
    merchant_rows = pl.DataFrame({
        "scope": "MERCHANT", "merchant_id": mids, "blob_offset_bytes": ob, "blob_length_bytes": lb,
        "edge_count_total": sizes.astype(np.int32), "alias_table_length": sizes.astype(np.int32),
        "merchant_alias_checksum": seg_hex}, schema=INDEX_SCHEMA)   # typed: a world may have no virtual merchant
    glob = pl.DataFrame({"scope": ["GLOBAL"], "merchant_id": [None], "blob_offset_bytes": [0],
                         "blob_length_bytes": [len(blob)], "edge_count_total": [int(sizes.sum())],
                         "alias_table_length": [None], "merchant_alias_checksum": [blob_sha]},
                        schema=merchant_rows.schema)
    index = pl.concat([merchant_rows, glob]).with_columns(pl.col("scope").cast(pl.Enum(["MERCHANT", "GLOBAL"])))
    header = {"layout_version": LAYOUT_VERSION, "endianness": "little", "alignment_bytes": 8, "prob_qbits": G_BITS,
              "blob_length_bytes": len(blob), "blob_sha256_hex": blob_sha, "merchants": int(len(sizes))}
    return AliasTables(blob, index, header, off, m, prob_q, al, delta)


def universe_hash(digests: dict) -> dict:
    """edge_universe_hash_3B JSON from the component digests (hex), sorted by name."""
    missing = [c for c in COMPONENTS if c not in digests]
    if missing:
        raise ValueError(f"missing components {missing}")
    h = hashlib.sha256()
    for c in COMPONENTS:
        h.update(bytes.fromhex(digests[c]))
    return {"components": [{"name": c, "sha256": digests[c]} for c in COMPONENTS], "edge_universe_hash": h.hexdigest()}
