"""Stream a declared dataset row group by row group, with the checks `datasets.read_table` and
`contracts.validate_table` make, in memory bounded by one row group (validation of ~1e8-row outputs).

The same file checks (manifest, sizes, upstream flag for another segment's hand-off, run identity),
columns, types, nulls and values per row group. Keys are checked in O(rows): a dataset whose primary key
equals its sort key must be strictly increasing in it, across row groups and files (which gives both the
order and the uniqueness that `validate_table` gets from a sort); other datasets must be non-decreasing
in their sort key, and their primary key is checked within each row group only.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import contracts
from .context import RunContext
from .datasets import check_upstream, identity_mismatch
from .errors import EngineFailure
from .publish import sealed_files

T = TypeVar("T")
_END = object()


def _key_codes(col: pa.Array) -> np.ndarray:
    """Order-preserving int64 codes of one row group's column (strings: rank among its distinct values)."""
    if pa.types.is_dictionary(col.type):
        d = col.dictionary
        rank = np.empty(len(d), np.int64)
        rank[np.asarray(pc.sort_indices(d))] = np.arange(len(d))
        return rank[col.indices.to_numpy(zero_copy_only=False)]
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        uniq = pc.unique(col)
        uniq = pc.take(uniq, pc.sort_indices(uniq))
        return np.asarray(pc.index_in(col, value_set=uniq), np.int64)
    return np.asarray(col.to_numpy(zero_copy_only=False))


def _first_out_of_order(keys: list[np.ndarray], strict: bool) -> int:
    """Index i of the first row with key[i] > key[i+1] (or == when strict); -1 if none."""
    n = len(keys[0])
    if n < 2:
        return -1
    gt, eq = np.zeros(n - 1, bool), np.ones(n - 1, bool)
    for k in keys:
        gt |= eq & (k[:-1] > k[1:])
        eq &= k[:-1] == k[1:]
    bad = gt | eq if strict else gt
    return int(np.argmax(bad)) if bad.any() else -1


def scan_dataset(ctx: RunContext, dataset_id: str, code_prefix: str,
                 partition: dict[str, str] | None = None,
                 keep_group: Callable[[str, int, pq.FileMetaData], bool] | None = None
                 ) -> Iterator[tuple[dict, pa.Table]]:
    """(Hive partition values, row group) of a dataset this state declared, in file (= key) order;
    with `partition`, only the files of that partition (e.g. {"scenario_id": "baseline_v1"}); with
    `keep_group(file, i, metadata)`, only the row groups it keeps (a shard skips other merchants' by
    their statistics; the key order is then checked over the groups read)."""
    ent = contracts.entry(dataset_id)
    if ent["segment"] != ctx.io.segment:
        check_upstream(ctx, dataset_id, code_prefix)
    root = Path(ctx.io.input(dataset_id))
    props = contracts.dataset_schema(dataset_id)["properties"]
    pk, sort_key = ent.get("primary_key") or [], ent.get("sort_key") or []
    strict = bool(pk) and pk == sort_key
    nullable = {n for n, s in props.items() if contracts._nullable(s)}

    def fail(name: str, msg: str, **c) -> EngineFailure:
        return EngineFailure(f"{code_prefix}.{name}", msg, {"dataset": dataset_id, **c})

    prev_part, prev_last = None, None
    for f in sealed_files(root, code_prefix, dataset_id):
        rel = Path(f).relative_to(root).parts[:-1]
        part = dict(p.partition("=")[::2] for p in rel)
        if partition and any(part.get(k) != v for k, v in partition.items()):
            continue
        if part != prev_part:                            # keys and order hold within each partition
            prev_part, prev_last = part, None
        try:
            pf = pq.ParquetFile(f)
            schema = pf.schema_arrow
        except (pa.ArrowInvalid, OSError) as exc:
            raise fail("INPUT_CORRUPT", f"cannot read parquet ({exc}); rerun its producing rule", file=f) from None
        bad = identity_mismatch(schema.empty_table(), ctx)
        if bad:
            raise fail("INPUT_STALE", f"dataset was built under another {bad[0]}; rerun its producing rule", file=f)
        if schema.names != list(props):
            raise fail("SCHEMA_INVALID", "column set/order differs from the contract", file=f,
                       got=",".join(schema.names), want=",".join(props))
        for name, spec in props.items():
            if schema.field(name).type != contracts.arrow_type(spec["x-arrow"]):
                raise fail("SCHEMA_INVALID", f"type {schema.field(name).type} != {spec['x-arrow']}", column=name)
        for i in range(pf.num_row_groups):
            if keep_group is not None and not keep_group(f, i, pf.metadata):
                continue
            t = pf.read_row_group(i).combine_chunks()
            for name, spec in props.items():
                col = t.column(name).chunk(0) if t.num_rows else t.column(name)
                if col.null_count and name not in nullable:
                    raise fail("SCHEMA_INVALID", f"{col.null_count} nulls in a non-nullable column", column=name)
                # a dictionary column's values are its dictionary (the writer keeps only used entries)
                contracts._check_values(col.dictionary if pa.types.is_dictionary(col.type) and t.num_rows else col,
                                        spec, code_prefix, dataset_id, name)
            if sort_key and t.num_rows:
                j = _first_out_of_order([_key_codes(t.column(c).chunk(0)) for c in sort_key], strict)
                first = tuple(t.column(c)[0].as_py() for c in sort_key)
                if j < 0 and prev_last is not None and (first < prev_last or (strict and first == prev_last)):
                    j = 0
                if j >= 0:
                    code, what = ("DUP_PK", "duplicate primary key or rows out of key order") if strict else \
                        ("SORT_INVALID", "rows are not sorted by the dictionary sort key")
                    raise fail(code, what, sort_key=",".join(sort_key), file=f, row_group=i, row=j)
                prev_last = tuple(t.column(c)[t.num_rows - 1].as_py() for c in sort_key)
            if pk and not strict:
                contracts._check_keys(t, dataset_id, code_prefix)
            yield part, t


def read_columns(ctx: RunContext, dataset_id: str, code_prefix: str, columns: list[str]) -> pa.Table:
    """`datasets.read_table` restricted to `columns` (same file and identity checks; no Hive partition
    columns): a wide dataset read for a few of its columns decodes only those."""
    if contracts.entry(dataset_id)["segment"] != ctx.io.segment:
        check_upstream(ctx, dataset_id, code_prefix)
    parts = []
    for f in sealed_files(Path(ctx.io.input(dataset_id)), code_prefix, dataset_id):
        try:
            t = pq.ParquetFile(f).read(columns=columns)      # not pq.read_table (imports pandas)
        except (pa.ArrowInvalid, OSError) as exc:
            raise EngineFailure(f"{code_prefix}.INPUT_CORRUPT", f"cannot read parquet ({exc}); rerun its producing rule",
                                {"file": f, "dataset": dataset_id}) from None
        bad = identity_mismatch(t, ctx)
        if bad:
            raise EngineFailure(f"{code_prefix}.INPUT_STALE", f"dataset was built under another {bad[0]}; rerun its "
                                "producing rule", {"file": f, "dataset": dataset_id})
        parts.append(t)
    return pa.concat_tables(parts) if len(parts) > 1 else parts[0]


def prefetched(items: Iterable[T]) -> Iterator[T]:
    """`items` produced one ahead on a worker thread, in order: the next row group is read, decoded and
    checked (pyarrow releases the GIL) while the caller folds this one. Errors surface where the item
    would have been produced; closing the generator early stops the worker after its current item."""
    it = iter(items)
    with ThreadPoolExecutor(1, thread_name_prefix="prefetch") as ex:
        fut = ex.submit(next, it, _END)
        while (item := fut.result()) is not _END:
            fut = ex.submit(next, it, _END)
            yield item
