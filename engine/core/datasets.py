"""Read and publish datasets by dictionary id: conform -> validate -> atomic publish."""
from __future__ import annotations

import polars as pl
import pyarrow as pa

from . import contracts
from .context import RunContext
from .errors import EngineFailure
from .publish import publish_dataset, read_dataset


def publish(ctx: RunContext, data: pl.DataFrame | pa.Table, dataset_id: str, code_prefix: str) -> pa.Table:
    table = data.to_arrow() if isinstance(data, pl.DataFrame) else data
    table = contracts.conform(table, dataset_id, code_prefix)
    contracts.validate_table(table, dataset_id, code_prefix)
    publish_dataset(table, contracts.dataset_path(ctx.results, dataset_id), ctx.identity, dataset_id, code_prefix)
    return table


def identity_mismatch(table: pa.Table, ctx: RunContext) -> list[str]:
    """Identity keys whose Parquet metadata differs from this run's."""
    meta = table.schema.metadata or {}
    return [k for k in ("parameter_hash", "manifest_fingerprint", "seed")
            if meta.get(k.encode(), b"").decode() != str(ctx.identity[k])]


def to_polars(table: pa.Table) -> pl.DataFrame:
    """Dictionary columns come back as plain strings: joins need no global string cache."""
    cols = [c.cast(pa.string()) if pa.types.is_dictionary(c.type) else c for c in table.columns]
    return pl.from_arrow(pa.table(cols, names=table.column_names))


def read(ctx: RunContext, dataset_id: str, code_prefix: str) -> pl.DataFrame:
    """Read a dataset of this run; one made under another identity is refused."""
    path = contracts.dataset_path(ctx.results, dataset_id)
    table = read_dataset(path, code_prefix, dataset_id)
    bad = identity_mismatch(table, ctx)
    if bad:
        raise EngineFailure(f"{code_prefix}.INPUT_STALE",
                            f"dataset was built under another {bad[0]}; rerun its producing rule",
                            {"path": str(path), "dataset": dataset_id})
    return to_polars(table)
