"""Tiny-world fixtures: 1A..3B are built once per session (twice, for determinism)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engine import pipeline
from engine.core.context import ROOT, RunContext


def build(results: Path, root: Path = ROOT, segments=("1A",), **cfg) -> RunContext:
    config = pipeline.load_config(root, preset="tiny", **cfg)
    ctx = pipeline.prepare(results, config, root=root)
    for seg in segments:
        pipeline.run_segment(ctx, seg)
    return ctx


def build_1A(results: Path, root: Path = ROOT, **cfg) -> RunContext:
    return build(results, root, ("1A",), **cfg)


@pytest.fixture(scope="session")
def world_a(tmp_path_factory) -> RunContext:
    return build(tmp_path_factory.mktemp("a") / "results", segments=("1A", "1B", "2A", "2B", "3A", "3B", "5A", "5B"))


@pytest.fixture(scope="session")
def world_b(tmp_path_factory) -> RunContext:
    return build(tmp_path_factory.mktemp("b") / "results", segments=("1A", "1B", "2A", "2B", "3A", "3B", "5A", "5B"))


SCENARIOS_2 = ["baseline_v1", "stress_v1"]


@pytest.fixture(scope="session")
def world_2s(tmp_path_factory) -> RunContext:
    """The tiny world with two scenarios (config `scenarios`), built once: read-only."""
    return build(tmp_path_factory.mktemp("s2") / "results", segments=("1A", "1B", "2A", "2B", "3A", "3B", "5A", "5B"),
                 scenarios=SCENARIOS_2)


def copy_of(world: RunContext, tmp_path: Path) -> RunContext:
    """A private copy of a session world's results, safe to tamper with."""
    dst = tmp_path / "results"
    shutil.copytree(world.results, dst)
    return RunContext.load(dst / "run_receipt.json", world.config, root=world.root)


@pytest.fixture()
def world_copy(world_a, tmp_path) -> RunContext:
    """A private copy of world A's results, safe to tamper with."""
    return copy_of(world_a, tmp_path)


def workflow_with(wd: Path, results: Path) -> Path:
    """A copy of the workflow (Snakefile, rules, scripts, config, ...) in `wd`, with a copy of `results`:
    to run Snakemake on a session world without touching it."""
    wd.mkdir()
    shutil.copy(ROOT / "Snakefile", wd)
    for d in ("rules", "scripts", "config", "contracts", "report", "envs", "profiles"):
        shutil.copytree(ROOT / d, wd / d)
    shutil.copytree(results, wd / "results")
    return wd


@pytest.fixture()
def config_copy(tmp_path) -> Path:
    """A private copy of config/ to break; returns the new root."""
    root = tmp_path / "root"
    shutil.copytree(ROOT / "config", root / "config")
    return root


def reseal(dataset_dir: Path) -> None:
    """Rewrite a dataset's manifest after a test edited its files (simulates a valid re-publish)."""
    import pyarrow.parquet as pq

    from engine.core.publish import read_manifest, seal
    man = read_manifest(dataset_dir)
    files = [{"path": p.relative_to(dataset_dir).as_posix(), "rows": pq.ParquetFile(p).metadata.num_rows}
             for p in sorted(dataset_dir.rglob("*.parquet"))]
    seal(dataset_dir, files, man["dataset_id"], man["identity"])
