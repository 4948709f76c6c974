"""3B.S3: edge alias tables (engine.core.alias integer Vose on the 2^24 grid) packed into the INTERFACES blob
results/3B/edge_alias_blob/edge_alias_blob_3B.bin, its index (hand-off) and edge_universe_hash_3B.json (RNG-free).

The blob is a control file, not a dataset: 5B finds it through the index, whose GLOBAL row (first) carries
the blob's length and SHA-256, and the index is sealed by the 3B flag."""
from __future__ import annotations

import hashlib

import polars as pl

from engine.core import datasets
from engine.core.context import RunContext
from engine.core.identity import dumps, sha256_file
from engine.core.publish import publish_text
from engine.seg3A.egress import parquet_digest

from . import alias_tables, edges
from .common import report_path, state_report, write_bytes

CODE = "3B.S3"
# The RNG law the edges were drawn under (DESIGN §5, INTERFACES §4): no policy file holds it, so its
# universe-hash component is the digest of this canonical statement (assumption: the chapter's rng_policy).
RNG_POLICY = {"generator": "philox2x64-10", "message_prefix": "fraudworld.rng.v1",
              "families": sorted([edges.TILE_FAMILY, edges.JITTER_FAMILY]), "uniform": "((x>>11)+0.5)/2^53"}


def index_frame(tables: alias_tables.AliasTables) -> pl.DataFrame:
    """GLOBAL row first, then merchants ascending: the dictionary's (scope, merchant_id) order."""
    idx = tables.index.with_columns(pl.col("scope").cast(pl.String))
    return pl.concat([idx.filter(pl.col("scope") == "GLOBAL"), idx.filter(pl.col("scope") == "MERCHANT")])


def digests(ctx: RunContext, tables: alias_tables.AliasTables, index_dir) -> dict[str, str]:
    return {"alias_layout_policy": sha256_file(ctx.io.policy("2B", "site_weights")),
            "cdn_policy": sha256_file(ctx.io.policy("3B", "cdn_country_weights")),
            "edge_alias_blob": tables.header["blob_sha256_hex"],
            "edge_alias_index": parquet_digest(index_dir),
            "edge_catalogue_global": parquet_digest(ctx.io.input("edge_catalogue_3B")),
            "rng_policy": hashlib.sha256(dumps(RNG_POLICY).encode()).hexdigest(),
            "tile_surface": parquet_digest(ctx.io.input("tile_weights"))}


def run(ctx: RunContext) -> None:
    rep = state_report("S3")
    cat = datasets.read(ctx, "edge_catalogue_3B", CODE)
    datasets.read_table(ctx, "tile_weights", CODE)          # verified against 1B's flag before it is hashed
    tables = alias_tables.build_tables(cat, CODE)
    datasets.publish(ctx, index_frame(tables), "edge_alias_index_3B", CODE)
    write_bytes(tables.blob, ctx.io.output("blob"))
    doc = {**alias_tables.universe_hash(digests(ctx, tables, ctx.io.output("edge_alias_index_3B"))),
           "blob_header": tables.header}
    publish_text(dumps(doc), ctx.io.output("universe_hash"), CODE, overwrite=True)
    rep.count(merchants=tables.header["merchants"], edges=cat.height, blob_bytes=len(tables.blob))
    rep.data["alias_max_abs_delta"] = tables.max_abs_delta
    rep.data["edge_universe_hash"] = doc["edge_universe_hash"]
    rep.rng(None)
    rep.write(report_path(ctx, "S3"))
