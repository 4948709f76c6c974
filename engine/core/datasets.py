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


def read(ctx: RunContext, dataset_id: str, code_prefix: str) -> pl.DataFrame:
    """Read a dataset of this run; one made under another identity is refused."""
    path = contracts.dataset_path(ctx.results, dataset_id)
    table = read_dataset(path, code_prefix, dataset_id)
    meta = table.schema.metadata or {}
    for k in ("parameter_hash", "manifest_fingerprint", "seed"):
        got = meta.get(k.encode(), b"").decode()
        if got != str(ctx.identity[k]):
            raise EngineFailure(f"{code_prefix}.INPUT_STALE",
                                f"dataset was built under another {k}; rerun its producing rule",
                                {"path": str(path), "dataset": dataset_id})
    # Dictionary columns come back as plain strings: joins need no global string cache.
    cols = [c.cast(pa.string()) if pa.types.is_dictionary(c.type) else c for c in table.columns]
    return pl.from_arrow(pa.table(cols, names=table.column_names))
