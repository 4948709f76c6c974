"""Contracts: the dataset dictionary, JSON-Schemas per dataset and per policy file, and
validators for Arrow tables and YAML policies (DESIGN §4).

A dataset schema is a JSON-Schema describing one row; each property also names its Arrow
type in `x-arrow`. Table validation checks it column-wise (vectorised), never row by row.
"""
from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import yaml

from .errors import EngineFailure

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "contracts"

_ARROW = {
    "uint64": pa.uint64(), "uint32": pa.uint32(), "uint8": pa.uint8(),
    "int64": pa.int64(), "int32": pa.int32(), "int16": pa.int16(), "int8": pa.int8(),
    "float64": pa.float64(), "bool": pa.bool_(), "string": pa.string(),
    "dict": pa.dictionary(pa.int32(), pa.string()),
    "list<string>": pa.list_(pa.string()),
    "date32": pa.date32(),
    "timestamp_utc": pa.timestamp("us", tz="UTC"), "timestamp_local": pa.timestamp("us"),
}


def arrow_type(name: str) -> pa.DataType:
    return _ARROW[name]


@functools.cache
def _load_yaml(path: str) -> Any:
    with open(path) as f:
        return yaml.safe_load(f)


@functools.cache
def dictionary() -> dict[str, dict]:
    """The dataset dictionary, keyed by dataset id."""
    doc = _load_yaml(str(CONTRACTS / "dataset_dictionary.yaml"))
    return {d["id"]: d for d in doc["datasets"]}


def entry(dataset_id: str) -> dict:
    return dictionary()[dataset_id]


def dataset_path(results: Path, dataset_id: str) -> Path:
    """Dictionary path (relative to the results root's parent) resolved under `results`."""
    rel = Path(entry(dataset_id)["path"])
    return Path(results) / rel.relative_to("results")


@functools.cache
def dataset_schema(dataset_id: str) -> dict:
    schema = _load_yaml(str(ROOT / entry(dataset_id)["schema_ref"]))
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


def _nullable(spec: dict) -> bool:
    t = spec.get("type")
    return isinstance(t, list) and "null" in t


def conform(table: pa.Table, dataset_id: str, code_prefix: str) -> pa.Table:
    """Order columns as the schema lists them and cast each to its declared Arrow type."""
    props = dataset_schema(dataset_id)["properties"]
    missing = [c for c in props if c not in table.column_names]
    if missing:
        raise EngineFailure(f"{code_prefix}.SCHEMA_INVALID", "columns missing from output",
                            {"dataset": dataset_id, "columns": ",".join(missing)})
    cols = []
    for name, spec in props.items():
        col = table.column(name)
        want = arrow_type(spec["x-arrow"])
        if pa.types.is_dictionary(want):
            if not pa.types.is_dictionary(col.type):
                col = pc.dictionary_encode(col.cast(pa.string()))
            col = col.cast(want)
        elif col.type != want:
            if pa.types.is_list(want):
                col = col.cast(pa.list_(pa.string()))
            else:
                try:
                    col = col.cast(want)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    raise EngineFailure(f"{code_prefix}.SCHEMA_INVALID", f"cannot cast column: {exc}",
                                        {"dataset": dataset_id, "column": name}) from None
        cols.append(col)
    return pa.table(cols, names=list(props))


def _fail(code_prefix: str, dataset_id: str, msg: str, **ctx) -> EngineFailure:
    return EngineFailure(f"{code_prefix}.SCHEMA_INVALID", msg, {"dataset": dataset_id, **ctx})


def validate_table(table: pa.Table, dataset_id: str, code_prefix: str) -> None:
    """Columns, types, nullability, value constraints, primary-key uniqueness and sort order."""
    schema = dataset_schema(dataset_id)
    props = schema["properties"]
    if table.column_names != list(props):
        raise _fail(code_prefix, dataset_id, "column set/order differs from the contract",
                    got=",".join(table.column_names), want=",".join(props))
    for name, spec in props.items():
        col = table.column(name)
        if col.type != arrow_type(spec["x-arrow"]):
            raise _fail(code_prefix, dataset_id, f"type {col.type} != {spec['x-arrow']}", column=name)
        if col.null_count and not _nullable(spec):
            raise _fail(code_prefix, dataset_id, f"{col.null_count} nulls in a non-nullable column", column=name)
        _check_values(col, spec, code_prefix, dataset_id, name)
    _check_keys(table, dataset_id, code_prefix)


def _check_values(col, spec, code_prefix, dataset_id, name) -> None:
    if pa.types.is_dictionary(col.type):
        col = col.cast(pa.string())
    if pa.types.is_list(col.type):
        col = pc.list_flatten(col)
    if len(col) == 0 or col.null_count == len(col):
        return
    if "minimum" in spec and pc.min(col).as_py() < spec["minimum"]:
        raise _fail(code_prefix, dataset_id, f"value {pc.min(col).as_py()} below minimum {spec['minimum']}", column=name)
    if "maximum" in spec and pc.max(col).as_py() > spec["maximum"]:
        raise _fail(code_prefix, dataset_id, f"value {pc.max(col).as_py()} above maximum {spec['maximum']}", column=name)
    if "exclusiveMinimum" in spec and pc.min(col).as_py() <= spec["exclusiveMinimum"]:
        raise _fail(code_prefix, dataset_id, f"value {pc.min(col).as_py()} not above {spec['exclusiveMinimum']}", column=name)
    if "exclusiveMaximum" in spec and pc.max(col).as_py() >= spec["exclusiveMaximum"]:
        raise _fail(code_prefix, dataset_id, f"value {pc.max(col).as_py()} not below {spec['exclusiveMaximum']}", column=name)
    enum = spec.get("enum") or (spec.get("items") or {}).get("enum")
    if enum:
        vals = pc.drop_null(col)                          # nullability is checked separately
        bad = pc.filter(vals, pc.invert(pc.is_in(vals, pa.array([e for e in enum if e is not None]))))
        if len(bad):
            raise _fail(code_prefix, dataset_id, f"value {bad[0].as_py()!r} not in {enum}", column=name)
    pattern = spec.get("pattern") or (spec.get("items") or {}).get("pattern")
    if pattern:
        uniq = pc.unique(col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col).drop_null()
        bad = [v for v in uniq.to_pylist() if not re.fullmatch(pattern, v)]  # distinct values only
        if bad:
            raise _fail(code_prefix, dataset_id, f"value {bad[0]!r} does not match {pattern}", column=name)


def _sort_codes(col: pa.ChunkedArray) -> np.ndarray:
    """Order-preserving integer codes of a column, so a multi-column key compares as ints."""
    if pa.types.is_dictionary(col.type):
        col = col.cast(pa.string())
    arr = col.combine_chunks()
    if pa.types.is_string(arr.type):
        uniq = pc.unique(arr)
        uniq = pc.take(uniq, pc.sort_indices(uniq))
        return np.asarray(pc.index_in(arr, value_set=uniq), dtype=np.int64)
    return np.asarray(arr.to_numpy(zero_copy_only=False))


def _check_keys(table: pa.Table, dataset_id: str, code_prefix: str) -> None:
    ent = entry(dataset_id)
    pk, sort_key = ent.get("primary_key") or [], ent.get("sort_key") or []
    n = table.num_rows
    if n < 2:
        return
    if pk:
        keys = [_sort_codes(table.column(c)) for c in pk]
        order = np.lexsort(keys[::-1])
        same = np.ones(n - 1, dtype=bool)
        for k in keys:
            ks = k[order]
            same &= ks[1:] == ks[:-1]
        if same.any():
            i = int(order[np.argmax(same)])
            raise EngineFailure(f"{code_prefix}.DUP_PK", "duplicate primary key",
                                {"dataset": dataset_id, "key": {c: table.column(c)[i].as_py() for c in pk}})
    if sort_key:
        keys = [_sort_codes(table.column(c)) for c in sort_key]
        # rows must be non-decreasing in the lexicographic key
        gt = np.zeros(n - 1, dtype=bool)
        eq = np.ones(n - 1, dtype=bool)
        for k in keys:
            gt |= eq & (k[:-1] > k[1:])
            eq &= k[:-1] == k[1:]
        if gt.any():
            raise EngineFailure(f"{code_prefix}.SORT_INVALID", "rows are not sorted by the dictionary sort key",
                                {"dataset": dataset_id, "sort_key": ",".join(sort_key), "row": int(np.argmax(gt)) + 1})


# ---------------------------------------------------------------- policies

def policy_schema_path(segment: str, name: str) -> Path:
    return CONTRACTS / "policies" / segment / f"{name}.schema.yaml"


def load_policy(path: Path, segment: str, name: str, code_prefix: str) -> dict:
    """Load a YAML policy and validate it (schema, finite, in range); errors name file and field."""
    from .workflow import ConfigError, check_policy
    try:
        return check_policy(Path(path), segment, name)
    except ConfigError as exc:
        raise EngineFailure(f"{code_prefix}.INPUT_INVALID", str(exc), {"file": str(path)}) from None


def policy_invalid(code_prefix: str, path: Path, field: str, message: str) -> EngineFailure:
    """A semantic policy error (one the schema cannot express), named like a schema error."""
    return EngineFailure(f"{code_prefix}.INPUT_INVALID", f"field '{field}': {message}; fix it in the policy file",
                         {"file": str(path), "field": field})
