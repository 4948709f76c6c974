"""Atomic publishing of datasets and control files (DESIGN §4).

A dataset is a directory of `part-NNNNN.parquet` files. It is written into a temporary
sibling and renamed into place; an existing target must be byte-identical, otherwise the
state fails with `<SEG>.<STATE>.IO_WRITE_CONFLICT`. A killed writer leaves only a hidden
temporary directory, which the next publish of the same dataset removes.
"""
from __future__ import annotations

import filecmp
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .errors import EngineFailure

ROWS_PER_PART = 4_000_000


def _tmp_sibling(target: Path) -> Path:
    return target.parent / f".{target.name}.tmp.{os.getpid()}"


def _clear_stale(target: Path) -> None:
    for stale in target.parent.glob(f".{target.name}.tmp.*"):
        shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)


def _same_tree(a: Path, b: Path) -> bool:
    fa = sorted(p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file())
    fb = sorted(p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file())
    return fa == fb and all(filecmp.cmp(a / r, b / r, shallow=False) for r in fa)


def with_identity(table: pa.Table, identity: dict, dataset_id: str) -> pa.Table:
    meta = dict(table.schema.metadata or {})
    meta.update({b"dataset_id": dataset_id.encode()})
    for k in ("seed", "parameter_hash", "manifest_fingerprint"):
        meta[k.encode()] = str(identity[k]).encode()
    return table.replace_schema_metadata(meta)


def _write_parts(table: pa.Table, out: Path, rows_per_part: int) -> None:
    out.mkdir(parents=True)
    n = table.num_rows
    starts = range(0, max(n, 1), rows_per_part)
    for i, s in enumerate(starts):
        pq.write_table(table.slice(s, rows_per_part), out / f"part-{i:05d}.parquet",
                       compression="zstd", compression_level=3, write_statistics=True,
                       row_group_size=min(rows_per_part, 1_000_000))


def publish_dataset(table: pa.Table, target: Path, identity: dict, dataset_id: str,
                    code_prefix: str, rows_per_part: int = ROWS_PER_PART,
                    partition_by: str | None = None) -> Path:
    """Write `table` atomically as a Parquet directory at `target`.

    With `partition_by`, rows are split into Hive directories `<col>=<value>/` (the column
    is kept out of the files, as Hive readers expect).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _clear_stale(target)
    tmp = _tmp_sibling(target)
    table = with_identity(table, identity, dataset_id)
    try:
        if partition_by is None:
            _write_parts(table, tmp, rows_per_part)
        else:
            tmp.mkdir()
            col = table.column(partition_by).to_pylist()
            for value in sorted(set(col)):
                mask = pa.compute.equal(table.column(partition_by), value)
                _write_parts(table.filter(mask).drop_columns([partition_by]),
                             tmp / f"{partition_by}={value}", rows_per_part)
        commit_dir(tmp, target, code_prefix)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def commit_dir(tmp: Path, target: Path, code_prefix: str) -> None:
    """Rename a staged directory into place, or accept a byte-identical existing one."""
    if target.exists():
        if not _same_tree(tmp, target):
            raise EngineFailure(
                f"{code_prefix}.IO_WRITE_CONFLICT",
                "output already exists with different bytes; delete it (or the whole results/ "
                "tree of this run) if the change is intended",
                {"path": str(target)})
        shutil.rmtree(tmp)
        return
    os.rename(tmp, target)


def publish_text(text: str, target: Path, code_prefix: str, overwrite: bool = False) -> Path:
    """Atomically write a small control file. Without `overwrite`, a different existing
    file is a conflict (same rule as datasets)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode()
    if target.exists() and not overwrite:
        if target.read_bytes() == data:
            return target
        raise EngineFailure(f"{code_prefix}.IO_WRITE_CONFLICT",
                            "control file already exists with different bytes", {"path": str(target)})
    tmp = target.parent / f".{target.name}.tmp.{os.getpid()}"
    tmp.write_bytes(data)
    os.replace(tmp, target)
    return target


def read_dataset(path: Path, code_prefix: str, dataset_id: str | None = None) -> pa.Table:
    """Read a published dataset; a missing or unreadable one is a named failure."""
    path = Path(path)
    files = sorted(path.rglob("*.parquet")) if path.is_dir() else []
    if not files:
        raise EngineFailure(f"{code_prefix}.INPUT_MISSING",
                            "input dataset is missing; run the producing rule first",
                            {"path": str(path), "dataset": dataset_id or path.name})
    try:
        return pq.read_table(path, partitioning="hive") if path.is_dir() else pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise EngineFailure(f"{code_prefix}.INPUT_CORRUPT",
                            f"cannot read parquet ({exc}); rebuild it by deleting the directory and rerunning",
                            {"path": str(path)}) from None
