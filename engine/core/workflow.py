"""What the Snakefile checks when the workflow is parsed, before any job runs (DESIGN §7).

- config/config.yaml is read here (not by Snakemake), so a broken or empty file names its
  line; the effective config (file + every --configfile/--config override) is validated
  against contracts/config.schema.yaml and a bad key is named in one line.
- every policy under config/<SEG>/ is validated against its schema (NaN, infinities and
  out-of-range values refused), so `snakemake -n` stops on a bad 1B policy before 1A runs.
- datasets whose files no longer match their `_manifest.json` (deleted, truncated, modified,
  or extra parts) are un-sealed, and their segment's flag removed, so Snakemake reruns the
  producer instead of saying "Nothing to be done".
- Snakemake locks left by a hard-killed run are removed when no Snakemake process is alive in
  this directory.
"""
from __future__ import annotations

import os
from pathlib import Path

import jsonschema
import yaml

from . import contracts
from .errors import EngineFailure
from .publish import MANIFEST, read_manifest

CONFIG = "config/config.yaml"


class ConfigError(Exception):
    """A one-line message for the user (file, key, value, what is allowed)."""


def load_yaml(path: Path, what: str) -> dict:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError:
        raise ConfigError(f"{path}: {what} is missing; restore it from git") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: not valid YAML ({problem}); fix that line") from None
    if doc is None:
        raise ConfigError(f"{path}: {what} is empty; restore it from git")
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: {what} must be a mapping of keys, got {type(doc).__name__}")
    return doc


def merge(base: dict, over: dict) -> dict:
    """Nested update: `over` wins (Snakemake's --config/--configfile semantics)."""
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def effective_config(root: Path, overrides: dict) -> dict:
    """config/config.yaml with every command-line override applied, validated."""
    cfg = merge(load_yaml(Path(root) / CONFIG, "the world config"), dict(overrides or {}))
    validate_config(cfg, Path(root) / CONFIG)
    return cfg


def _path(err) -> str:
    return ".".join(str(p) for p in err.absolute_path) or "<root>"


def validate_config(cfg: dict, path: Path) -> None:
    schema = contracts._load_yaml(str(contracts.CONTRACTS / "config.schema.yaml"))
    allowed = list(schema["properties"])
    unknown = [k for k in cfg if k not in allowed]
    if unknown:
        raise ConfigError(f"{path}: unknown config key '{unknown[0]}'; allowed keys: {', '.join(allowed)}")
    _finite(cfg, str(path), "")
    err = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(cfg))
    if err is not None:
        key = _path(err)
        top = key.split(".")[0]
        hint = f" (e.g. --config preset={cfg[top]})" if top in ("world", "presets") and isinstance(cfg.get(top), str) \
            else ""
        raise ConfigError(f"{path}: config key '{key}' = {err.instance!r}: {err.message.splitlines()[0]}{hint}")


# Policies feed int64/float64 kernels: no number beyond this magnitude has a meaning in any of them.
POLICY_ABS_MAX = 1e9


def _finite(doc, file: str, prefix: str) -> None:
    """Refuse NaN, infinities and numbers beyond POLICY_ABS_MAX anywhere in a document."""
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for k, v in items:
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, bool):
            continue
        if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
            raise ConfigError(f"{file}: key '{key}' = {v!r}: NaN and infinities are not allowed; give a finite number")
        if isinstance(v, (int, float)) and abs(v) > POLICY_ABS_MAX and not key.startswith("seed"):
            raise ConfigError(f"{file}: key '{key}' = {v!r}: out of range; numbers must lie within "
                              f"±{POLICY_ABS_MAX:g}")
        if isinstance(v, (dict, list)):
            _finite(v, file, key)


def check_policy(path: Path, segment: str, name: str) -> dict:
    """One policy file against its schema; raises ConfigError naming file, key, value and range."""
    doc = load_yaml(path, "policy file")
    _finite(doc, str(path), "")
    schema_path = contracts.policy_schema_path(segment, name)
    if not schema_path.exists():
        raise ConfigError(f"{path}: no schema {schema_path.relative_to(contracts.ROOT)}; every policy needs one")
    schema = contracts._load_yaml(str(schema_path))
    err = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(doc))
    if err is not None:
        raise ConfigError(f"{path}: key '{_path(err)}' = {err.instance!r}: {err.message.splitlines()[0]}"
                          f"{_allowed(err)}")
    return doc


def _allowed(err) -> str:
    s = err.schema if isinstance(err.schema, dict) else {}
    lo = s.get("minimum", s.get("exclusiveMinimum"))
    hi = s.get("maximum", s.get("exclusiveMaximum"))
    if lo is not None or hi is not None:
        return f" (allowed: {'' if lo is None else lo}..{'' if hi is None else hi})"
    if "enum" in s:
        return f" (allowed: {', '.join(map(str, s['enum']))})"
    return ""


def check_policies(root: Path) -> int:
    """Every config/<SEG>/*.yaml against contracts/policies/<SEG>/<name>.schema.yaml."""
    n = 0
    for path in sorted((Path(root) / "config").glob("*/*.yaml")):
        seg = path.parent.name
        if seg in ("reference",):
            continue
        check_policy(path, seg, path.stem)
        n += 1
    return n


def policy_failure(exc: ConfigError, code_prefix: str, path: Path) -> EngineFailure:
    return EngineFailure(f"{code_prefix}.INPUT_INVALID", str(exc), {"file": str(path)})


# ---------------------------------------------------------------- damaged datasets

def damage(dataset_dir: Path) -> str | None:
    """Why a sealed dataset no longer matches its manifest, or None."""
    man = read_manifest(dataset_dir)
    if man is None:
        return "manifest unreadable"
    m_mtime = (dataset_dir / MANIFEST).stat().st_mtime_ns
    listed = set()
    for e in man.get("files", []):
        p = dataset_dir / e["path"]
        listed.add(e["path"])
        if not p.exists():
            return f"{e['path']} is missing"
        st = p.stat()
        if st.st_size != e["bytes"]:
            return f"{e['path']} changed size"
        if st.st_mtime_ns > m_mtime:
            return f"{e['path']} was modified after it was sealed"
    extra = {p.relative_to(dataset_dir).as_posix() for p in dataset_dir.rglob("*.parquet")} - listed
    if extra:
        return f"{sorted(extra)[0]} is not in the manifest"
    return None


def unseal_damaged(results: Path) -> list[str]:
    """Un-seal every damaged dataset and remove the flag that certified it; return messages.

    Snakemake does not rebuild a missing intermediate file while the final target is up to
    date, so a flag over missing or damaged data goes too: its validation state then reruns,
    and with it the producers of whatever is missing. A missing reference table takes the run
    receipt with it (everything depends on the receipt)."""
    results = Path(results)
    msgs = []
    if not results.is_dir():
        return msgs
    for ds, entry in sorted(contracts.dictionary().items()):
        d = results.parent / entry["path"]
        seg = results / entry["segment"]
        man = d / MANIFEST
        why = damage(d) if man.exists() else ("missing" if _built(seg, entry) else None)
        if not why:
            continue
        man.unlink(missing_ok=True)
        if entry["segment"] == "reference":
            (results / "run_receipt.json").unlink(missing_ok=True)
        else:
            for s in _downstream(results, entry["segment"]):
                (results / s / "_passed.flag").unlink(missing_ok=True)
        msgs.append(f"{d}: {why}; its producing rule will rerun")
    return msgs


def _downstream(results: Path, segment: str) -> list[str]:
    """The segment and every segment whose gate recorded it, recursively."""
    import json
    found, todo = [segment], [segment]
    while todo:
        up = todo.pop()
        for gate in sorted(results.glob("*/S0/gate_receipt.json")):
            try:
                ups = [u["segment"] for u in json.loads(gate.read_text()).get("upstream", [])]
            except (OSError, ValueError):
                continue
            seg = gate.parent.parent.name
            if up in ups and seg not in found:
                found.append(seg)
                todo.append(seg)
    return found


def _built(seg: Path, entry: dict) -> bool:
    """Was this dataset's segment built, or consumed by a downstream gate (so that a missing
    dataset is damage to repair, not a fresh start)?"""
    if entry["segment"] == "reference":
        return (seg.parent / "run_receipt.json").exists()
    return ((seg / "_passed.flag").exists() or (seg / "validation").is_dir()
            or len(_downstream(seg.parent, entry["segment"])) > 1)


# ---------------------------------------------------------------- stale locks

def _snakemake_alive(cwd: Path) -> bool:
    me = os.getpid()
    for d in Path("/proc").glob("[0-9]*"):
        try:
            if int(d.name) == me:
                continue
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if "snakemake" in cmd and Path(os.readlink(d / "cwd")) == cwd:
                return True
        except (OSError, ValueError):
            continue
    return False


def clear_stale_locks(workdir: Path) -> bool:
    """Locks of a hard-killed run: removed if no other Snakemake process works in this directory."""
    locks = Path(workdir) / ".snakemake" / "locks"
    files = list(locks.glob("*.lock")) if locks.is_dir() else []
    if not files or not Path("/proc/self").exists() or _snakemake_alive(Path(workdir).resolve()):
        return False
    for f in files:
        f.unlink(missing_ok=True)
    return True


def parse_time(basedir: str, config: dict, repair: bool = True) -> dict:
    """Everything the Snakefile does before building the DAG; returns the effective config.
    A bad config or policy prints one ERROR line and exits 1 (no traceback, nothing written).
    `repair=False` (a cluster job re-parsing the Snakefile) skips un-sealing and lock removal: only
    the main Snakemake process may do those (a job on another node sees no live Snakemake there)."""
    import sys
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (basedir, os.environ.get("PYTHONPATH")) if p)
    try:
        cfg = effective_config(Path(basedir), config)
        check_policies(Path(basedir))
    except ConfigError as exc:
        sys.stderr.write(f"ERROR: {exc}\n")
        raise SystemExit(1) from None
    if not repair:
        config.clear()
        return cfg
    for msg in unseal_damaged(Path(basedir) / "results"):
        sys.stderr.write(f"WARNING: damaged dataset {msg}\n")
    if clear_stale_locks(Path(basedir)):
        sys.stderr.write("NOTE: removed Snakemake locks left by a killed run (no Snakemake process is alive here)\n")
    config.clear()
    return cfg
