"""Heavy states split by scenario and merchant shard (config `shards` > 1, issue: cluster execution):
on the tiny world with two scenarios, every shard job of 5A.S4 and 5B.S2-S5 plus the merge writes the
bytes of one job, in process and through Snakemake."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from conftest import SCENARIOS_2, copy_of, workflow_with

from engine.core import datasets, stateio
from engine.core.errors import EngineFailure
from engine.core.publish import read_dataset
from engine.core.stateio import StateIO
from engine.seg5A import states as states5A
from engine.seg5B import s5_validation as S5
from engine.seg5B import states

# state: (shard run, merge, what it publishes)
STATES = {
    "5A.S4": (states5A.s4_scenarios, states5A.s4_merge,
              ("5A/merchant_zone_scenario_utc", "5A/scenario_calendar", "5A/scenario_manifest", "5A/S4/run_report.json")),
    "5B.S2": (states.s2_latent, states.s2_merge, ("5B/s2_latent_field", "5B/rng/S2.trace.json", "5B/S2/run_report.json")),
    "5B.S3": (states.s3_counts, states.s3_merge, ("5B/s3_bucket_counts", "5B/rng/S3.trace.json", "5B/S3/run_report.json")),
    "5B.S4": (states.s4_arrivals, states.s4_merge,
              ("5B/arrival_events", "5B/s4_arrival_summary", "5B/rng/S4.trace.json", "5B/S4/run_report.json")),
    "5B.S5": (S5.run, S5.merge, ("5B/validation", "5B/_passed.flag", "5B/S5/summary.html", "5B/S5/run_report.json")),
}
VOLATILE = ("timings_s", "shards", "arrivals_per_second", "shard")    # how the work was split, how long it took


def _files(results: Path, under) -> dict[str, bytes]:
    out = {}
    for u in under:
        p = results / u
        for f in ([p] if p.is_file() else sorted(q for q in p.rglob("*") if q.is_file())):
            out[f.relative_to(results).as_posix()] = f.read_bytes()
    return out


def _report(raw: bytes) -> dict:
    rep = {k: v for k, v in json.loads(raw).items() if k not in VOLATILE}
    for s in rep.get("scenarios", {}).values():
        if isinstance(s, dict):
            s.pop("batches", None)                  # S4's write batches: one or more per job
    return rep


def test_jobs_are_scenarios_times_merchant_shards_in_the_one_job_order():
    cfg = {"shards": 3, "scenarios": ["stress_v1", "baseline_v1"]}
    assert stateio.shard_jobs(cfg, "5B.S4") == [(s, k, 3) for s in ("baseline_v1", "stress_v1") for k in range(3)]
    assert stateio.shard_jobs(cfg, "5B.S2") == [("baseline_v1", 0, 1), ("stress_v1", 0, 1)]   # by scenario only
    assert stateio.shard_jobs({**cfg, "shards": 1}, "5B.S4") == []                             # one job
    assert stateio.shard_jobs({"shards": 4, "scenarios": ["baseline_v1"]}, "5B.S2") == []     # one job: no split
    assert stateio.shard_jobs(cfg, "5B.S1") == []                                              # not shardable
    _, outs = stateio.declare("5B.S3", shard=(1, 3), scenario="stress_v1")
    assert outs["s3_bucket_counts_5B"] == "results/5B/_shards/S3/stress_v1/1-of-3/s3_bucket_counts/_manifest.json"


@pytest.mark.parametrize("state", sorted(STATES))
def test_scenario_and_merchant_shards_write_the_bytes_of_one_job(world_2s, tmp_path, state):
    """Every shard job of `state` (2 scenarios x 2 merchant shards; 5B.S2: 2 scenarios) then its merge,
    over a copy of the two-scenario world with the state's outputs removed: the same published bytes and
    the same report as one job; each scenario's shards write only that scenario."""
    run, merge, files = STATES[state]
    ctx = copy_of(world_2s, tmp_path)
    res = ctx.results
    for u in files:
        p = res / u
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    jobs = stateio.shard_jobs({"shards": 2, "scenarios": SCENARIOS_2}, state)
    assert len(jobs) == (2 if state == "5B.S2" else 4)
    for sid, k, n in jobs:
        run(ctx.for_state(state, StateIO.resolve(state, res, ctx.root, shard=(k, n), scenario=sid)))
    for sid, k, n in jobs:                  # a split dataset holds its own scenario's partition only
        sd = res / stateio.shard_dir(state, k, n, sid).removeprefix("results/")
        for d in stateio.produced_by(state):
            if d not in stateio.states()[state].get("shard_whole", []):
                man = json.loads((sd / Path(stateio.dataset_manifest(d)).parent.name / "_manifest.json").read_text())
                assert {f["path"].split("/")[0] for f in man["files"] if "=" in f["path"]} <= {f"scenario_id={sid}"}
    merge(ctx.for_state(state, StateIO.resolve(state, res, ctx.root, merge=jobs)))
    a, b = _files(world_2s.results, files), _files(res, files)
    assert a.keys() == b.keys()
    reports = [k for k in a if k.endswith("run_report.json")]
    assert [k for k in a if k not in reports and a[k] != b[k]] == []
    assert [_report(a[k]) for k in reports] == [_report(b[k]) for k in reports]


def test_a_shard_job_for_a_scenario_not_in_the_data_is_refused(world_2s, tmp_path):
    ctx = copy_of(world_2s, tmp_path)
    io = StateIO.resolve("5B.S3", ctx.results, ctx.root, shard=(0, 2), scenario="holiday_v9")
    with pytest.raises(EngineFailure) as e:
        states.s3_counts(ctx.for_state("5B.S3", io))
    assert e.value.code == "5B.S3.SHARD_SCENARIO_UNKNOWN"
    assert not (ctx.results / "5B/_shards/S3/holiday_v9/0-of-2/s3_bucket_counts").exists()


def test_snakemake_splits_by_scenario_and_shard_and_rebuilds_the_same_bytes(world_2s, tmp_path):
    """The two-scenario world rerun from 5A.S4 with `--config shards=2`: 4 shard jobs (2 scenarios x 2
    shards) and a merge for 5A.S4, 5B.S3, 5B.S4, 5B.S5, 2 for 5B.S2; every file comes out the same."""
    wd = workflow_with(tmp_path / "wd", world_2s.results)
    r = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", "--config", "preset=tiny", "shards=2",
                        f"scenarios=[{','.join(SCENARIOS_2)}]", "--forcerun", "seg5A_s4_merge"],
                       cwd=wd, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    for rule, n in (("seg5A_s4", 4), ("seg5B_s2", 2), ("seg5B_s3", 4), ("seg5B_s4", 4), ("seg5B_s5", 4)):
        assert out.count(f"rule {rule}_shard:") == n and f"rule {rule}_merge:" in out, rule
    assert "rule seg5A_s0_gate:" not in out                     # upstream of the forced state: kept
    everything = [p.relative_to(world_2s.results).as_posix() for p in world_2s.results.iterdir()]
    a, b = _files(world_2s.results, everything), _files(wd / "results", everything)
    skip = [k for k in a if k.endswith("run_report.json")]
    assert [k for k in a if k not in skip and a[k] != b.get(k)] == []


def test_keys_are_unique_within_a_scenario_partition_not_across(world_2s, tmp_path):
    """The two scenarios' calendars share events (same holidays, same event_id): legal, the primary key
    holds per partition; a duplicate inside one partition is refused and nothing is published."""
    ctx = copy_of(world_2s, tmp_path)
    c = ctx.for_state("5A.S4", StateIO.resolve("5A.S4", ctx.results, ctx.root))
    out = c.io.output("scenario_calendar_5A")
    cal = read_dataset(out, "T")
    ids = {s: set(cal.filter(pc.equal(cal["scenario_id"], s))["event_id"].to_pylist()) for s in SCENARIOS_2}
    assert ids[SCENARIOS_2[0]] & ids[SCENARIOS_2[1]]
    before = _files(ctx.results, ["5A/scenario_calendar"])
    shutil.rmtree(out)
    datasets.publish(c, cal, "scenario_calendar_5A", "5A.S4", partition_by="scenario_id")
    assert _files(ctx.results, ["5A/scenario_calendar"]) == before
    shutil.rmtree(out)
    with pytest.raises(EngineFailure) as e:
        datasets.publish(c, pa.concat_tables([cal, cal.slice(0, 1)]), "scenario_calendar_5A", "5A.S4",
                         partition_by="scenario_id")
    assert e.value.code == "5A.S4.DUP_PK" and not out.exists()
