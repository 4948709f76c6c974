"""Read and publish datasets by dictionary id, through the state's declared paths.

Reading enforces "no PASS, no read" in code: a dataset of another segment must be a hand-off,
its segment's flag must verify and match the digest this segment's gate saw, and every file
read must carry the checksum that flag sealed. A reference table must carry the checksum the
run receipt hashed into `parameter_hash`. A dataset of the reading segment is checked against
its own manifest.
"""
from __future__ import annotations

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from . import contracts, hashgate
from .context import RunContext
from .errors import EngineFailure
from .identity import sha256_file
from .publish import MANIFEST, DatasetWriter, iter_batches, partitions, publish_dataset, read_dataset


def publish(ctx: RunContext, data: pl.DataFrame | pa.Table, dataset_id: str, code_prefix: str,
            partition_by: str | None = None, extra: dict | None = None) -> pa.Table:
    """Conform to the contract, validate, publish atomically to the state's declared output."""
    table = data.to_arrow() if isinstance(data, pl.DataFrame) else data
    part = table.column(partition_by).cast(pa.string()) if partition_by else None
    table = contracts.conform(table, dataset_id, code_prefix)      # the partition column is not in the files
    if part is None:
        contracts.validate_table(table, dataset_id, code_prefix)
    else:                               # keys are unique and ordered within a partition (e.g. per scenario)
        for v in pc.unique(part).to_pylist():
            contracts.validate_table(table.filter(pc.equal(part, v)), dataset_id, code_prefix)
    if part is not None:
        table = table.append_column(partition_by, part)
    publish_dataset(table, ctx.io.output(dataset_id), ctx.identity, dataset_id, code_prefix, partition_by,
                    extra=extra)
    return table


def writer_schema(dataset_id: str) -> pa.Schema:
    """The Arrow schema of a dataset's files, in contract order (partition columns are paths)."""
    return pa.schema([(n, contracts.arrow_type(s["x-arrow"]))
                      for n, s in contracts.dataset_schema(dataset_id)["properties"].items()])


def column_encoding(dataset_id: str) -> dict[str, str]:
    """DELTA_BINARY_PACKED for the columns the contract marks `x-parquet: delta`: near-sorted
    timestamps and counters (5A's bucket index, 5B's arrival times) encode ~3x faster than a
    dictionary attempt and come out smaller."""
    props = contracts.dataset_schema(dataset_id)["properties"]
    return {n: "DELTA_BINARY_PACKED" for n, s in props.items() if s.get("x-parquet") == "delta"}


def writer(ctx: RunContext, dataset_id: str, code_prefix: str, **kw) -> DatasetWriter:
    """A streaming writer for a large dataset; batches must already be in contract order and types."""
    return DatasetWriter(ctx.io.output(dataset_id), writer_schema(dataset_id), dataset_id, ctx.identity,
                         code_prefix, column_encoding=column_encoding(dataset_id), **kw)


def identity_mismatch(table: pa.Table, ctx: RunContext) -> list[str]:
    """Identity keys whose Parquet metadata differs from this run's."""
    meta = table.schema.metadata or {}
    return [k for k in ("parameter_hash", "manifest_fingerprint", "seed")
            if meta.get(k.encode(), b"").decode() != str(ctx.identity[k])]


def to_polars(table: pa.Table) -> pl.DataFrame:
    """Dictionary columns come back as plain strings: joins need no global string cache."""
    cols = [c.cast(pa.string()) if pa.types.is_dictionary(c.type) else c for c in table.columns]
    return pl.from_arrow(pa.table(cols, names=table.column_names))


def _rel(ctx: RunContext, p) -> str:
    return "results/" + p.relative_to(ctx.results).as_posix()


def check_reference(ctx: RunContext, dataset_id: str, code_prefix: str) -> None:
    """Reference files must be the bytes the run receipt hashed into parameter_hash."""
    path = ctx.io.input(f"ref_{dataset_id}")
    hashed = {f["path"]: f["sha256"] for f in ctx.receipt.get("parameter_files", [])}
    files = sorted(path.rglob("*.parquet")) if path.is_dir() else []
    if not files:
        raise EngineFailure(f"{code_prefix}.REFERENCE_MISSING", "reference table missing; run the "
                            "reference_tables rule", {"path": str(path)})
    for f in files:
        if hashed.get(_rel(ctx, f)) != sha256_file(f):
            raise EngineFailure(f"{code_prefix}.REFERENCE_CHANGED", "reference table differs from the bytes hashed "
                                "into parameter_hash; rerun the reference_tables and run_receipt rules",
                                {"file": str(f)})


def check_upstream(ctx: RunContext, dataset_id: str, code_prefix: str) -> None:
    """Another segment's hand-off: its flag verifies, is the one our gate saw, and seals these files."""
    up = contracts.entry(dataset_id)["segment"]
    seg_dir = ctx.results / up
    digest = hashgate.verify_cached(seg_dir, code_prefix)
    if ctx.io.has_input("gate"):
        seen = hashgate.gate_upstream(ctx.io.input("gate")).get(up)
        if seen != digest:
            raise EngineFailure(f"{code_prefix}.UPSTREAM_CHANGED_SINCE_GATE",
                                f"segment {up} was rebuilt after this segment's gate verified it; rerun "
                                f"{ctx.io.segment}.S0 (snakemake reruns it when its inputs change)",
                                {"flag": str(seg_dir / hashgate.FLAG), "gate_saw": seen, "now": digest})
    check_upstream_files(ctx, dataset_id, code_prefix, {up: digest})


def check_upstream_files(ctx: RunContext, dataset_id: str, code_prefix: str, verified: dict[str, str]) -> None:
    """Every file of an upstream hand-off carries the checksum its (verified) flag seals."""
    up = contracts.entry(dataset_id)["segment"]
    if not contracts.entry(dataset_id).get("handoff"):
        raise EngineFailure(f"{code_prefix}.NOT_A_HANDOFF", f"{dataset_id} is internal to {up}; read only hand-off "
                            "datasets (INTERFACES §1) across segments", {"dataset": dataset_id})
    if up not in verified:
        raise EngineFailure(f"{code_prefix}.UPSTREAM_FLAG_MISSING", f"reads {dataset_id} without verifying {up}'s "
                            "flag; declare it in contracts/states.yaml", {"dataset": dataset_id})
    sealed = hashgate.sealed_checksums(ctx.results / up)
    path = ctx.io.input(dataset_id)
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.name != MANIFEST)
    for f in files:
        rel = f.relative_to(ctx.results).as_posix()
        if sealed.get(rel) != sha256_file(f):
            raise EngineFailure(f"{code_prefix}.UPSTREAM_HASHGATE_DIGEST_MISMATCH",
                                f"{up} output differs from the checksum its _passed.flag seals; rebuild segment {up}",
                                {"file": str(f)})
    if not files:
        raise EngineFailure(f"{code_prefix}.INPUT_MISSING", "upstream dataset is missing; rebuild segment " + up,
                            {"path": str(path)})


def read_table(ctx: RunContext, dataset_id: str, code_prefix: str) -> pa.Table:
    seg = contracts.entry(dataset_id)["segment"]
    if seg == "reference":
        check_reference(ctx, dataset_id, code_prefix)
        return read_dataset(ctx.io.input(f"ref_{dataset_id}"), code_prefix, dataset_id)
    if seg != ctx.io.segment:
        check_upstream(ctx, dataset_id, code_prefix)
    path = ctx.io.input(dataset_id)
    table = read_dataset(path, code_prefix, dataset_id)
    bad = identity_mismatch(table, ctx)
    if bad:
        raise EngineFailure(f"{code_prefix}.INPUT_STALE",
                            f"dataset was built under another {bad[0]}; rerun its producing rule",
                            {"path": str(path), "dataset": dataset_id})
    return table


def _checked_path(ctx: RunContext, dataset_id: str, code_prefix: str):
    if contracts.entry(dataset_id)["segment"] != ctx.io.segment:
        check_upstream(ctx, dataset_id, code_prefix)
    return ctx.io.input(dataset_id)


def scenario_partitions(ctx: RunContext, dataset_id: str, code_prefix: str) -> list[str]:
    """The partition values of a dataset partitioned by one key, e.g. its scenario ids, sorted."""
    return sorted(next(iter(p.values())) for p in partitions(_checked_path(ctx, dataset_id, code_prefix),
                                                              code_prefix, dataset_id) if p)


def batches(ctx: RunContext, dataset_id: str, code_prefix: str, columns: list[str] | None = None,
            partition: dict[str, str] | None = None):
    """Stream a declared dataset (checked as `read_table` checks it) one row group at a time, in the
    order it was written: for the tables too large to load whole (5A's λ surface, 5B's arrivals)."""
    path = _checked_path(ctx, dataset_id, code_prefix)
    first = True
    for t in iter_batches(path, code_prefix, dataset_id, columns, partition):
        if first:
            bad = identity_mismatch(t, ctx)
            if bad:
                raise EngineFailure(f"{code_prefix}.INPUT_STALE",
                                    f"dataset was built under another {bad[0]}; rerun its producing rule",
                                    {"path": str(path), "dataset": dataset_id})
            first = False
        yield t


def read(ctx: RunContext, dataset_id: str, code_prefix: str) -> pl.DataFrame:
    """A dataset (or reference table) this state declared, verified as above, as Polars."""
    return to_polars(read_table(ctx, dataset_id, code_prefix))


def load(results, dataset_id: str, verify: bool = True) -> pl.DataFrame:
    """Read a dataset from a results tree outside any state (users, notebooks, tests).

    With `verify`, a hand-off is read only if its segment's flag verifies and seals its files.
    """
    from pathlib import Path
    results = Path(results)
    entry = contracts.entry(dataset_id)
    path = contracts.dataset_path(results, dataset_id)
    if verify and entry.get("handoff") and entry["segment"] != "reference":
        seg_dir = results / entry["segment"]
        hashgate.verify_cached(seg_dir, "CORE.READ")
        sealed = hashgate.sealed_checksums(seg_dir)
        for f in sorted(p for p in path.rglob("*") if p.is_file() and p.name != MANIFEST):
            if sealed.get(f.relative_to(results).as_posix()) != sha256_file(f):
                raise EngineFailure("CORE.READ.UPSTREAM_HASHGATE_DIGEST_MISMATCH",
                                    "file differs from the checksum its segment's _passed.flag seals; rebuild the segment",
                                    {"file": str(f)})
    return to_polars(read_dataset(path, "CORE.READ", dataset_id))
