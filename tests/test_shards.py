"""A shardable state (5A.S4, 5B.S3, 5B.S4) run as n merchant shards plus a merge writes the bytes of
one job, in process and through Snakemake (`--config shards=4`); the shard count is not part of the
run identity."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import workflow_with
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.core import identity, rng, shards
from engine.core.errors import EngineFailure
from engine.core.stateio import StateIO
from engine.seg5A import states as states5A
from engine.seg5B import states

S4_FILES = ("5B/arrival_events", "5B/s4_arrival_summary", "5B/rng/S4.trace.json")
# state: (run, merge, published files, run report)
SHARDED = {
    "5A.S4": (states5A.s4_scenarios, states5A.s4_merge,
              ("5A/merchant_zone_scenario_utc", "5A/scenario_calendar", "5A/scenario_manifest"), "5A/S4/run_report.json"),
    "5B.S3": (states.s3_counts, states.s3_merge, ("5B/s3_bucket_counts", "5B/rng/S3.trace.json"),
              "5B/S3/run_report.json"),
}


def _jobs(n: int) -> list:
    """The merge's jobs for n merchant shards over every scenario (scenario None)."""
    return [(None, k, n) for k in range(n)]


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
    states.s4_merge(world_copy.for_state("5B.S4", StateIO.resolve("5B.S4", res, world_copy.root, merge=_jobs(n))))
    a, b = _files(world_a.results), _files(res)
    assert a.keys() == b.keys() and [k for k in a if a[k] != b[k]] == []


def _run_shards(ctx, state: str, n: int) -> None:
    """Shard jobs 0..n-1 of `state` then its merge, in process, over `ctx`'s results (outputs removed first)."""
    run, merge, files, _ = SHARDED[state]
    res = ctx.results
    for u in files:
        p = res / u
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    for k in range(n):
        run(ctx.for_state(state, StateIO.resolve(state, res, ctx.root, shard=(k, n))))
    merge(ctx.for_state(state, StateIO.resolve(state, res, ctx.root, merge=_jobs(n))))


@pytest.mark.parametrize("state", sorted(SHARDED))
@pytest.mark.parametrize("n", [2, 3])
def test_sharded_state_writes_the_bytes_of_one_job(world_copy, world_a, state, n):
    """5A.S4 and 5B.S3 as n shards + merge: every published byte as one job, each shard holding rows, and
    the merged report's figures (whole-table λ sums, expected arrivals, row counts) those of one job."""
    _, _, files, report = SHARDED[state]
    _run_shards(world_copy, state, n)
    sd = world_copy.results / state.split(".")[0] / "_shards" / state.split(".")[1]
    rows = [json.loads(m.read_text())["rows"] for m in sorted(sd.glob(f"*-of-{n}/*/_manifest.json"))
            if m.parent.name in ("merchant_zone_scenario_utc", "s3_bucket_counts")]
    assert len(rows) == n and min(rows) > 0                       # every shard did a share of the rows
    a, b = _files(world_a.results, files), _files(world_copy.results, files)
    assert a.keys() == b.keys() and [k for k in a if a[k] != b[k]] == []
    one, merged = (json.loads((r / report).read_text()) for r in (world_a.results, world_copy.results))
    drop = ("timings_s", "shards", "arrivals_per_second")
    assert {k: v for k, v in merged.items() if k not in drop} == {k: v for k, v in one.items() if k not in drop}


def test_shards_that_disagree_on_a_whole_dataset_fail_the_merge(world_copy):
    """5A's calendar is written whole by every shard: a shard whose copy differs stops the merge."""
    ctx = world_copy
    for k in range(2):
        states5A.s4_scenarios(ctx.for_state("5A.S4", StateIO.resolve("5A.S4", ctx.results, ctx.root, shard=(k, 2))))
    man = ctx.results / "5A/_shards/S4/1-of-2/scenario_calendar/_manifest.json"
    man.write_text(man.read_text().replace('"rows"', '"rows" ', 1))
    with pytest.raises(EngineFailure) as e:
        states5A.s4_merge(ctx.for_state("5A.S4", StateIO.resolve("5A.S4", ctx.results, ctx.root, merge=_jobs(2))))
    assert e.value.code == "5A.S4.SHARDS_DISAGREE"


def test_per_scenario_shard_traces_merge_to_the_one_job_counters():
    """Scenario a: shard 0 draws nothing, shard 1 draws at counter 5; scenario b: shard 0 at 9. One job
    draws first at 5 (scenario a) and last at 9: the per-scenario shard traces give that, where
    adding whole shard traces in shard order would start at 9."""
    def t(first, last, events):
        r = rng.RngTrace()
        r.add("5B.f", events, events, events, first and (0, first), last and (0, last))
        return r
    a0, a1, b0, b1 = t(None, None, 0), t(5, 6, 2), t(9, 9, 1), t(None, None, 0)
    one = rng.RngTrace()
    for x in (a0, a1, b0, b1):
        one.merge(x)
    per = [{"by_scenario": [["a", a0.to_dict()], ["b", b0.to_dict()]]},
           {"by_scenario": [["a", a1.to_dict()], ["b", b1.to_dict()]]}]
    assert shards._merged_trace(per).to_dict() == one.to_dict()
    flat = shards._merged_trace([_fold(p) for p in per])        # whole shard traces, shard by shard
    assert flat.to_dict()["5B.f"]["first_counter"] != one.to_dict()["5B.f"]["first_counter"]


def _fold(per_shard: dict) -> dict:
    r = rng.RngTrace()
    for _, d in per_shard["by_scenario"]:
        r.merge(d)
    return r.to_dict()


def test_whole_table_report_figures_must_agree():
    reps = [{"counts": {"rows": 2, "scenarios": 1}}, {"counts": {"rows": 3, "scenarios": 1}}]
    assert shards.add_reports(reps, whole=("scenarios",))["counts"] == {"rows": 5, "scenarios": 1}
    reps[1]["counts"]["scenarios"] = 2
    with pytest.raises(EngineFailure) as e:
        shards.add_reports(reps, whole=("scenarios",))
    assert e.value.code == "CORE.SHARDS.REPORT_DISAGREE"


def test_snakemake_with_four_shards_rebuilds_the_same_bytes(world_a, tmp_path):
    """A world built in one job per state, rerun from 5A.S4 as `--config shards=4` (forced: the outputs
    are there): four shard jobs and a merge for each of 5A.S4, 5B.S3, 5B.S4 and 5B.S5, everything
    downstream reruns, and every file comes out the same."""
    wd = workflow_with(tmp_path / "wd", world_a.results)
    r = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", "--config", "preset=tiny", "shards=4",
                        "--forcerun", "seg5A_s4_merge"],
                       cwd=wd, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    for rule in ("seg5A_s4", "seg5B_s3", "seg5B_s4", "seg5B_s5"):
        assert out.count(f"rule {rule}_shard:") == 4 and f"rule {rule}_merge:" in out, rule
    everything = [p.relative_to(world_a.results).as_posix() for p in world_a.results.iterdir()]
    a, b = _files(world_a.results, everything), _files(wd / "results", everything)
    skip = [k for k in a if k.endswith("run_report.json")]
    assert [k for k in a if k not in skip and a[k] != b.get(k)] == []
