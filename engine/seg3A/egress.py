"""3A.S5: zone_alloc (escalated pairs only, zero counts kept) and zone_alloc_universe_hash (RNG-free).

routing_universe_hash = sha256(zone_alpha ‖ theta ‖ zone_floor ‖ day_effect ‖ zone_alloc_parquet), raw
32-byte digests in that fixed order (chapter A3 S5). The chapter's canonical bytes for the two dataset
digests are the published Parquet bytes (our writer is deterministic); the state passes those in.
`canonical_digest` is the writer-independent alternative over columns (used by the tests and checks).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

COMPONENTS = ("zone_alpha_digest", "theta_digest", "zone_floor_digest", "day_effect_digest",
              "zone_alloc_parquet_digest")


def zone_alloc(counts: pl.DataFrame, queue: pl.DataFrame, shares: pl.DataFrame, versions: dict) -> pl.DataFrame:
    """Join S4 counts with S1 (site_count) and S3 (alpha_sum_country after dispersion), plus policy versions.

    `versions`: prior_pack_version, floor_policy_version, mixture_policy_version, day_effect_policy_version.
    """
    a = shares.group_by("merchant_id", "legal_country_iso").agg(pl.col("alpha_sum_country").first())
    d = counts.select("merchant_id", "legal_country_iso", "tzid", "zone_site_count", "zone_site_count_sum") \
        .join(queue.select("merchant_id", "legal_country_iso", "site_count"), on=["merchant_id", "legal_country_iso"],
              how="left", maintain_order="left") \
        .join(a, on=["merchant_id", "legal_country_iso"], how="left", maintain_order="left")
    return d.with_columns(*[pl.lit(versions[k]).alias(k) for k in sorted(versions)]) \
        .sort("merchant_id", "legal_country_iso", "tzid")


def canonical_digest(df: pl.DataFrame) -> str:
    """sha256 over the frame's columns in order: per column its name, then for numbers/bools the
    little-endian values, for strings the int64 LE offsets and the UTF-8 bytes. Independent of any
    file writer, chunking or dictionary encoding."""
    h = hashlib.sha256()
    for name in df.columns:
        s = df[name]
        h.update(name.encode() + b"\0")
        if s.dtype in (pl.String, pl.Categorical) or isinstance(s.dtype, pl.Enum):
            arr = s.cast(pl.String).to_arrow().cast(pa.large_string()).combine_chunks() \
                if isinstance(s.to_arrow(), pa.ChunkedArray) else s.cast(pl.String).to_arrow().cast(pa.large_string())
            _, off, data = arr.buffers()
            o = np.frombuffer(off, np.int64)[arr.offset:arr.offset + len(arr) + 1]
            h.update((o - o[0]).astype("<i8").tobytes())
            h.update(bytes(data)[o[0]:o[-1]] if data is not None else b"")
        else:
            v = s.to_numpy()
            h.update(v.astype(v.dtype.newbyteorder("<")).tobytes())
    return h.hexdigest()


def parquet_digest(dataset_dir: Path) -> str:
    """sha256 of a dataset's part files concatenated in path order (the chapter's "Parquet bytes")."""
    h = hashlib.sha256()
    for f in sorted(Path(dataset_dir).rglob("*.parquet"), key=lambda p: p.relative_to(dataset_dir).as_posix()):
        h.update(f.read_bytes())
    return h.hexdigest()


def universe_hash(digests: dict, coverage: str = "escalated_only") -> dict:
    """zone_alloc_universe_hash JSON: the five component digests (hex) and routing_universe_hash."""
    h = hashlib.sha256()
    for k in COMPONENTS:
        h.update(bytes.fromhex(digests[k]))
    return {**{k: digests[k] for k in COMPONENTS}, "routing_universe_hash": h.hexdigest(), "coverage": coverage}
