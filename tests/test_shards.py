"""A shardable state (5B.S4) run as n merchant shards plus a merge writes the bytes of one job, in
process and through Snakemake (`--config shards=4`); the shard count is not part of the run identity."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.core import identity, shards
from engine.core.context import ROOT
from engine.core.stateio import StateIO
from engine.seg5B import states

S4_FILES = ("5B/arrival_events", "5B/s4_arrival_summary", "5B/rng/S4.trace.json")


def _files(results: Path, under=S4_FILES) -> dict[str, bytes]:
    out = {}
    for u in under:
        p = results / u
        for f in ([p] if p.is_file() else sorted(q for q in p.rglob("*") if q.is_file())):
            out[f.relative_to(results).as_posix()] = f.read_bytes()
    return out


@given(st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=60), st.integers(1, 9))
@settings(max_examples=200, deadline=None)
def test_shards_partition_merchants_into_contiguous_ranges(mids, n):
    m = np.array(mids, np.uint64)
    masks = [shards.merchant_mask(m, (k, n)) for k in range(n)]
    assert np.array_equal(np.sum(masks, axis=0), np.ones(len(m)))             # each merchant exactly once
    u = np.unique(m)
    owner = np.array([next(k for k in range(n) if masks[k][np.flatnonzero(m == x)[0]]) for x in u])
    assert np.all(np.diff(owner) >= 0)                                         # in merchant order


def test_shard_count_is_not_in_the_run_identity():
    assert identity.canonical_config({"preset": "tiny", "shards": 8}) == identity.canonical_config({"preset": "tiny"})


@pytest.mark.parametrize("n", [2, 3])
def test_sharded_s4_writes_the_bytes_of_one_job(world_copy, world_a, n):
    res = world_copy.results
    for u in S4_FILES:
        p = res / u
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    for k in range(n):
        io = StateIO.resolve("5B.S4", res, world_copy.root, shard=(k, n))
        states.s4_arrivals(world_copy.for_state("5B.S4", io))
        assert (res / f"5B/_shards/S4/{k}-of-{n}/arrival_events/_manifest.json").exists()
    states.s4_merge(world_copy.for_state("5B.S4", StateIO.resolve("5B.S4", res, world_copy.root, merge=n)))
    a, b = _files(world_a.results), _files(res)
    assert a.keys() == b.keys() and [k for k in a if a[k] != b[k]] == []


def test_snakemake_with_four_shards_rebuilds_the_same_bytes(world_a, tmp_path):
    """A world built in one job per state, its S4 rerun as `--config shards=4` (forced: the outputs are
    there): four shard jobs, the merge and S5 run, and every file comes out the same."""
    wd = tmp_path / "wd"
    wd.mkdir()
    shutil.copy(ROOT / "Snakefile", wd)
    for d in ("rules", "scripts", "config", "contracts", "report", "envs", "profiles"):
        shutil.copytree(ROOT / d, wd / d)
    shutil.copytree(world_a.results, wd / "results")
    r = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", "--config", "preset=tiny", "shards=4",
                        "--forcerun", "seg5B_s4_merge"],
                       cwd=wd, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    assert out.count("rule seg5B_s4_shard:") == 4 and "rule seg5B_s4_merge:" in out
    everything = [p.relative_to(world_a.results).as_posix() for p in world_a.results.iterdir()]
    a, b = _files(world_a.results, everything), _files(wd / "results", everything)
    skip = [k for k in a if k.endswith("run_report.json")]
    assert [k for k in a if k not in skip and a[k] != b.get(k)] == []
