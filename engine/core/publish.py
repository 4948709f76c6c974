"""Atomic, deterministic publishing of datasets and control files (DESIGN §4).

A dataset is a directory of `part-NNNNN.parquet` files sealed by `_manifest.json` (each
file's size, SHA-256 and rows). It is staged in a hidden temporary sibling and renamed into
place. An existing sealed target must be byte-identical, otherwise the state fails with
`<SEG>.<STATE>.IO_WRITE_CONFLICT`; an unsealed leftover (no manifest) is replaced.

Bytes depend only on rows: rows are cut into row groups of a fixed number of rows and parts
of a fixed number of row groups, every row group is written from one contiguous chunk per
column, and dictionary columns are re-encoded per row group in order of first appearance.
So batch boundaries, Arrow chunking and thread counts never reach the file. `DatasetWriter`
streams: memory is bounded by one row group.

Every writer first sweeps its own stale temporary siblings (a killed writer's leftovers).
"""
from __future__ import annotations

import filecmp
import json
import os
import shutil
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from numba import njit

from .errors import EngineFailure
from .identity import dumps, sha256_file

MANIFEST = "_manifest.json"
ROW_GROUP_ROWS = 1_000_000
ROWS_PER_PART = 8_000_000
IN_FLIGHT = 2                 # row groups queued for the background encoder (memory: this many + one)
WRITE_OPTIONS = dict(compression="zstd", compression_level=3, write_statistics=True, use_dictionary=True,
                     data_page_size=1 << 20, write_page_index=False)


def write_options(schema: pa.Schema, column_encoding: dict[str, str] | None = None) -> dict:
    """WRITE_OPTIONS for a schema: dictionary pages for all but floating-point columns (continuous values
    rarely repeat, so hashing them costs time and the file comes out larger: 9.7 vs 8.0 MB per 8M 5A.S4
    rows), min/max statistics for all but dictionary columns (computing them materialises the strings,
    ~10 ns a row). `column_encoding` names a Parquet encoding for some non-dictionary columns instead
    (e.g. DELTA_BINARY_PACKED for a bucket index counting up). All of it is fixed per dataset, so bytes
    still depend only on rows."""
    enc = dict(column_encoding or {})
    opts = dict(WRITE_OPTIONS,
                use_dictionary=[f.name for f in schema if not pa.types.is_floating(f.type) and f.name not in enc],
                write_statistics=[f.name for f in schema if not pa.types.is_dictionary(f.type)])
    if enc:
        opts["column_encoding"] = enc
    return opts


def tmp_sibling(target: Path) -> Path:
    return target.parent / f".{target.name}.tmp.{os.getpid()}"


def clear_stale(target: Path) -> None:
    """Remove hidden temporary siblings of `target` left by a killed writer."""
    for stale in Path(target).parent.glob(f".{Path(target).name}.tmp.*"):
        shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)


def with_identity(schema: pa.Schema, identity: dict | None, dataset_id: str) -> pa.Schema:
    meta = {b"dataset_id": dataset_id.encode()}
    for k in ("seed", "parameter_hash", "manifest_fingerprint"):
        if identity is not None:
            meta[k.encode()] = str(identity[k]).encode()
    return schema.with_metadata(meta)


@njit(cache=True, nogil=True)
def _first_appearance(idx, valid, n_dict):
    """Dictionary codes renumbered by first appearance among valid rows; (new codes, old code per new)."""
    new_of = np.full(n_dict, -1, np.int32)
    order = np.empty(n_dict, np.int32)
    k = 0
    out = np.zeros(idx.shape[0], np.int32)
    all_valid = valid.shape[0] != idx.shape[0]          # a 1-element mask stands for "no nulls"
    for i in range(idx.shape[0]):
        if all_valid or valid[i]:
            j = idx[i]
            if new_of[j] < 0:
                new_of[j] = k
                order[k] = j
                k += 1
            out[i] = new_of[j]
    return out, order[:k]


def _canonical_dict(arr: pa.DictionaryArray) -> pa.DictionaryArray:
    """The dictionary rebuilt from the rows: values in order of first appearance, unused ones dropped.
    Renumbering codes (numba) gives the same array as re-encoding the strings, at a fraction of the cost."""
    d = arr.dictionary
    if len(pc.unique(d)) != len(d):                      # duplicate values: only a string re-encode merges them
        return pc.dictionary_encode(arr.cast(arr.type.value_type)).cast(arr.type)
    if arr.null_count:
        valid = np.asarray(arr.is_valid(), bool)
        idx = arr.indices.fill_null(0).to_numpy(zero_copy_only=False)
    else:                                                # the common case: no validity pass, no copy
        valid = np.ones(1, bool)
        idx = arr.indices.to_numpy()
    codes, order = _first_appearance(idx.astype(np.int32, copy=False), valid, len(d))
    ind = pa.array(codes, mask=~valid) if arr.null_count else pa.array(codes)
    return pa.DictionaryArray.from_arrays(ind, d.take(pa.array(order))).cast(arr.type)


def one_chunk(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    """A column as one array, without a copy when it already is one chunk (ChunkedArray.combine_chunks
    copies even then: a whole row group per column in the writer's hot path)."""
    if isinstance(col, pa.ChunkedArray):
        return col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()
    return col


def _canonical(table: pa.Table) -> pa.Table:
    """One chunk per column; dictionaries rebuilt from the rows (first-appearance order)."""
    cols = []
    for col in table.columns:
        arr = one_chunk(col)
        if pa.types.is_dictionary(arr.type):
            arr = _canonical_dict(arr)
        cols.append(arr)
    return pa.Table.from_arrays(cols, schema=table.schema)


def _encode(writer: pq.ParquetWriter, rg: pa.Table, rg_rows: int, canonical: bool = False) -> None:
    writer.write_table(rg if canonical else _canonical(rg), row_group_size=rg_rows)


class DatasetWriter:
    """Stream rows into a dataset directory; `close()` seals and commits it atomically.

    Use as a context manager: an exception aborts and removes the staged files.
    `subdir` places files under a Hive partition, e.g. `scenario_id=baseline_v1`.
    Row groups are canonicalised and encoded on one background thread, in submission order (so the
    bytes are those of a serial writer) while the caller produces the next rows; an encoding error is
    raised by a later `write` or by `close`. With `canonical_in_caller`, the caller's thread
    canonicalises (for a producer whose rows come from other threads, e.g. 5B.S4: the encoder alone
    is then the bottleneck, and dictionary renumbering is ~25% of its work).
    """

    def __init__(self, target: Path, schema: pa.Schema, dataset_id: str, identity: dict | None, code_prefix: str,
                 row_group_rows: int = ROW_GROUP_ROWS, rows_per_part: int = ROWS_PER_PART,
                 extra: dict | None = None, column_encoding: dict[str, str] | None = None,
                 canonical_in_caller: bool = False):
        self.target = Path(target)
        self.canonical_in_caller = canonical_in_caller
        self.extra = extra
        self.column_encoding = column_encoding
        self.schema = with_identity(schema, identity, dataset_id)
        self.dataset_id, self.identity, self.code = dataset_id, identity, code_prefix
        self.rg_rows = int(row_group_rows)
        self.part_rgs = max(1, int(rows_per_part) // self.rg_rows)
        self.target.parent.mkdir(parents=True, exist_ok=True)
        clear_stale(self.target)
        self.tmp = tmp_sibling(self.target)
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir()
        self._buf: list[pa.Table] = []
        self._buffered = 0
        self._parts: dict[str, int] = {}       # subdir -> next part number
        self._writer: pq.ParquetWriter | None = None
        self._writer_key: tuple[str, int] | None = None
        self._rgs_in_part = 0
        self._subdir = ""
        self.files: list[dict] = []
        self.rows = 0
        self._pool: ThreadPoolExecutor | None = None
        self._pending: deque[Future] = deque()

    # -- streaming
    def write(self, batch: pa.Table | pa.RecordBatch, subdir: str = "") -> None:
        t = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        if t.schema.remove_metadata() != self.schema.remove_metadata():
            t = t.select(self.schema.names).cast(self.schema.remove_metadata())
        if subdir != self._subdir:
            self._flush(final=True)
            self._close_part()
            self._subdir = subdir
        self._buf.append(t)
        self._buffered += t.num_rows
        self._flush(final=False)

    def _flush(self, final: bool) -> None:
        if not self._buffered or (not final and self._buffered < self.rg_rows):
            return
        data = pa.concat_tables(self._buf)
        self._buf, self._buffered = [], 0
        start = 0
        while data.num_rows - start >= self.rg_rows or (final and start < data.num_rows):
            n = min(self.rg_rows, data.num_rows - start)
            self._write_row_group(data.slice(start, n))
            start += n
        if start < data.num_rows:
            rest = data.slice(start)
            self._buf, self._buffered = [rest], rest.num_rows

    def _write_row_group(self, rg: pa.Table) -> None:
        if self._writer is None or self._rgs_in_part >= self.part_rgs:
            self._close_part()
            d = self.tmp / self._subdir if self._subdir else self.tmp
            d.mkdir(parents=True, exist_ok=True)
            k = self._parts.get(self._subdir, 0)
            self._parts[self._subdir] = k + 1
            path = d / f"part-{k:05d}.parquet"
            self._writer = pq.ParquetWriter(path, self.schema, **write_options(self.schema, self.column_encoding))
            self._writer_key = (path.relative_to(self.tmp).as_posix(), 0)
            self._rgs_in_part = 0
        rg = rg.replace_schema_metadata(self.schema.metadata)
        if self.canonical_in_caller:
            rg = _canonical(rg)
        self._submit(_encode, self._writer, rg, self.rg_rows, self.canonical_in_caller)
        self._rgs_in_part += 1
        rel, rows = self._writer_key
        self._writer_key = (rel, rows + rg.num_rows)

    def _submit(self, fn, *args) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="publish")
        self._pending.append(self._pool.submit(fn, *args))
        while len(self._pending) > IN_FLIGHT:
            self._pending.popleft().result()

    def _drain(self) -> None:
        while self._pending:
            self._pending.popleft().result()

    def _close_part(self) -> None:
        if self._writer is not None:
            self._submit(self._writer.close)
            rel, rows = self._writer_key
            self.files.append({"path": rel, "rows": rows})
            self.rows += rows
            self._writer = None

    # -- finish
    def close(self) -> Path:
        try:
            self._flush(final=True)
            self._close_part()
            if not self.files:                           # an empty dataset still has one (empty) part
                self._write_row_group(self.schema.empty_table())
                self._close_part()
            self._drain()
            seal(self.tmp, self.files, self.dataset_id, self.identity, self.extra)
            commit_dir(self.tmp, self.target, self.code)
        finally:
            self.abort()
        return self.target

    def abort(self) -> None:
        for f in self._pending:                          # let queued work finish before the files go
            f.exception()
        self._pending.clear()
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def seal(directory: Path, files: list[dict], dataset_id: str, identity: dict | None, extra: dict | None = None) -> dict:
    """Write `_manifest.json`: every part's path, size, SHA-256 and rows (+ a dataset's own `extra` keys)."""
    entries = []
    for f in sorted(files, key=lambda f: f["path"]):
        p = directory / f["path"]
        entries.append({"path": f["path"], "bytes": p.stat().st_size, "sha256": sha256_file(p), "rows": f["rows"]})
    man = {"dataset_id": dataset_id, "rows": sum(e["rows"] for e in entries), "files": entries,
           "identity": identity or {}, **(extra or {})}
    (directory / MANIFEST).write_text(dumps(man))
    return man


def read_manifest(directory: Path) -> dict | None:
    try:
        return json.loads((Path(directory) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def publish_dataset(table: pa.Table, target: Path, identity: dict | None, dataset_id: str,
                    code_prefix: str, partition_by: str | None = None, row_group_rows: int = ROW_GROUP_ROWS,
                    rows_per_part: int = ROWS_PER_PART, extra: dict | None = None) -> Path:
    """Write a whole table as a sealed dataset (the batch writer with one batch).

    With `partition_by`, rows go to Hive directories `<col>=<value>/` (the column is kept out
    of the files, as Hive readers expect), partitions in sorted order.
    """
    schema = table.schema if partition_by is None else table.drop_columns([partition_by]).schema
    with DatasetWriter(target, schema, dataset_id, identity, code_prefix, row_group_rows, rows_per_part, extra) as w:
        if partition_by is None:
            w.write(table)
        else:
            col = table.column(partition_by)
            for value in sorted(set(col.to_pylist())):
                part = table.filter(pc.equal(col, value)).drop_columns([partition_by])
                w.write(part, subdir=f"{partition_by}={value}")
    return Path(target)


def _same_tree(a: Path, b: Path) -> bool:
    fa = sorted(p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file())
    fb = sorted(p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file())
    return fa == fb and all(filecmp.cmp(a / r, b / r, shallow=False) for r in fa)


def commit_dir(tmp: Path, target: Path, code_prefix: str, sealed_only: bool = True) -> None:
    """Rename a staged directory into place. An existing sealed target must be identical;
    an unsealed one (no manifest: a damaged or half-removed dataset) is replaced."""
    if target.exists():
        if sealed_only and not (target / MANIFEST).exists():
            shutil.rmtree(target)
        elif not _same_tree(tmp, target):
            raise EngineFailure(
                f"{code_prefix}.IO_WRITE_CONFLICT",
                "output already exists with different bytes; delete it (or the whole results/ "
                "tree of this run) if the change is intended",
                {"path": str(target)})
        else:
            shutil.rmtree(tmp)
            return
    os.rename(tmp, target)


def publish_text(text: str, target: Path, code_prefix: str, overwrite: bool = False) -> Path:
    """Atomically write a small control file. Without `overwrite`, a different existing
    file is a conflict (same rule as datasets)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    clear_stale(target)
    data = text.encode()
    if target.exists() and not overwrite:
        if target.read_bytes() == data:
            return target
        raise EngineFailure(f"{code_prefix}.IO_WRITE_CONFLICT",
                            "control file already exists with different bytes", {"path": str(target)})
    tmp = tmp_sibling(target)
    tmp.write_bytes(data)
    os.replace(tmp, target)
    return target


def read_dataset(path: Path, code_prefix: str, dataset_id: str | None = None) -> pa.Table:
    """Read a published dataset; a missing, unsealed or unreadable one is a named failure.

    Files are checked against the manifest (present, same size, nothing extra) before reading.
    """
    path = Path(path)
    name = dataset_id or path.name
    files = sealed_files(path, code_prefix, dataset_id)
    try:
        parts = [_read_part(f, path) for f in files]
        return pa.concat_tables(parts) if len(parts) > 1 else parts[0]
    except (pa.ArrowInvalid, OSError) as exc:
        raise EngineFailure(f"{code_prefix}.INPUT_CORRUPT",
                            f"cannot read parquet ({exc}); rerun its producing rule",
                            {"path": str(path), "dataset": name}) from None


def sealed_files(path: Path, code_prefix: str, dataset_id: str | None = None) -> list[str]:
    """The Parquet files of a sealed dataset in manifest (path) order, checked against the manifest:
    present, same size, nothing extra; otherwise `<code>.INPUT_MISSING` / `<code>.INPUT_CORRUPT`."""
    path = Path(path)
    name = dataset_id or path.name
    man = read_manifest(path) if path.is_dir() else None
    if man is None:
        raise EngineFailure(f"{code_prefix}.INPUT_MISSING",
                            "input dataset is missing or not sealed (no _manifest.json); rerun its producing rule",
                            {"path": str(path), "dataset": name})
    on_disk = {p.relative_to(path).as_posix() for p in path.rglob("*.parquet")}
    for e in man["files"]:
        p = path / e["path"]
        if e["path"] not in on_disk or p.stat().st_size != e["bytes"]:
            raise EngineFailure(f"{code_prefix}.INPUT_CORRUPT",
                                "dataset file missing or truncated since it was published; rerun its producing rule",
                                {"file": str(p), "dataset": name})
    extra = on_disk - {e["path"] for e in man["files"]}
    if extra:
        raise EngineFailure(f"{code_prefix}.INPUT_CORRUPT", "dataset holds files its manifest does not list; "
                            "rerun its producing rule", {"file": str(path / sorted(extra)[0]), "dataset": name})
    return [str(path / e["path"]) for e in man["files"]]


def partitions(path: Path, code_prefix: str, dataset_id: str | None = None) -> list[dict[str, str]]:
    """The Hive partitions of a published dataset (e.g. [{"scenario_id": "baseline_v1"}]), in file order."""
    path = Path(path)
    out: list[dict[str, str]] = []
    for f in sealed_files(path, code_prefix, dataset_id):
        p = dict(part.split("=", 1) for part in Path(f).relative_to(path).parts[:-1])
        if p not in out:
            out.append(p)
    return out


def iter_batches(path: Path, code_prefix: str, dataset_id: str | None = None, columns: list[str] | None = None,
                 partition: dict[str, str] | None = None) -> Iterator[pa.Table]:
    """Stream a published dataset row group by row group, in file order (the order it was written);
    same manifest checks as `read_dataset`. Memory is one row group: for datasets too big to load."""
    path = Path(path)
    name = dataset_id or path.name
    for f in sealed_files(path, code_prefix, dataset_id):
        parts = dict(part.split("=", 1) for part in Path(f).relative_to(path).parts[:-1])
        if partition and any(parts.get(k) != v for k, v in partition.items()):
            continue
        try:
            pf = pq.ParquetFile(f)
            for rg in range(pf.num_row_groups):
                yield pf.read_row_group(rg, columns=columns)
        except (pa.ArrowInvalid, OSError) as exc:
            raise EngineFailure(f"{code_prefix}.INPUT_CORRUPT", f"cannot read parquet ({exc}); rerun its producing "
                                "rule", {"file": str(f), "dataset": name}) from None


def _read_part(file: str, root: Path) -> pa.Table:
    t = pq.ParquetFile(file).read()          # not pq.read_table: that imports pyarrow.dataset and pandas (~0.3 s)
    rel = Path(file).relative_to(root).parts[:-1]
    for part in rel:                                  # Hive partition columns, as strings
        k, _, v = part.partition("=")
        t = t.append_column(k, pa.repeat(pa.scalar(v, pa.string()), t.num_rows))
    return t
