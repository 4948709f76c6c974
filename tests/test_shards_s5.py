"""5B.S5 run as n merchant shards plus a merge writes the bundle, report page and flag of one job, and
fails closed the same way (issue: cluster execution)."""
from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import reseal
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.core import shards, stateio
from engine.core.context import ROOT
from engine.core.errors import EngineFailure
from engine.core.stateio import StateIO
from engine.seg5B import s5_validation as S5
from engine.seg5B.audit import sample_mask

S5_FILES = ("5B/validation", "5B/_passed.flag", "5B/S5/summary.html")


def _jobs(n: int) -> list:
    """The merge's jobs for n merchant shards over every scenario (scenario None)."""
    return [(None, k, n) for k in range(n)]


def _files(results: Path) -> dict[str, bytes]:
    out = {}
    for u in S5_FILES:
        p = results / u
        for f in ([p] if p.is_file() else sorted(q for q in p.rglob("*") if q.is_file()) if p.exists() else []):
            out[f.relative_to(results).as_posix()] = f.read_bytes()
    return out


def _run_sharded(ctx, n: int) -> None:
    res = ctx.results
    for k in range(n):
        S5.run(ctx.for_state("5B.S5", StateIO.resolve("5B.S5", res, ctx.root, shard=(k, n))))
        assert (res / f"5B/_shards/S5/{k}-of-{n}/partial.json").exists()
    S5.merge(ctx.for_state("5B.S5", StateIO.resolve("5B.S5", res, ctx.root, merge=_jobs(n))))


def _clear(results: Path) -> None:
    for u in S5_FILES:
        p = results / u
        shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)


@given(st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=60), st.integers(1, 9))
@settings(max_examples=200, deadline=None)
def test_merchant_ranges_tile_the_id_space_in_shard_order(mids, n):
    m = np.array(mids, np.uint64)
    rng = [S5.merchant_range(m, (k, n)) for k in range(n)]
    assert rng[0][0] == 0 and rng[-1][1] == 1 << 64
    assert all(rng[k][1] == rng[k + 1][0] for k in range(n - 1))
    for k, (lo, hi) in enumerate(rng):                        # the merchants of S4's shard k, no other
        inside = np.array([lo <= int(x) < hi for x in m])
        assert np.array_equal(inside, shards.merchant_mask(m, (k, n)))


@given(st.lists(st.integers(1, 500), min_size=1, max_size=300), st.sampled_from([0, 1, 37.5, 50, 99, 100]))
@settings(max_examples=200, deadline=None)
def test_percentile_from_the_count_histogram_is_numpys(counts, q):
    v, c = np.unique(counts, return_counts=True)
    got = S5._percentile([(int(a), int(b)) for a, b in zip(v, c)], q)
    assert got == pytest.approx(float(np.percentile(counts, q)), rel=1e-12, abs=1e-12)


@given(st.lists(st.tuples(st.sampled_from([0, 5, 2**63 + 7, 2**64 - 1]), st.integers(-2**63, 2**63 - 1)),
                min_size=1, max_size=80), st.integers(1, 40), st.integers(0, 80))
@settings(max_examples=300, deadline=None)
def test_zoneinfo_sample_is_a_rule_per_event_whatever_the_batches(rows, every, cut):
    """(merchant_id + arrival_seq) % every == 0, with runs of consecutive seq as S4 writes them: the same
    events are picked however the stream is split (row groups, shards)."""
    mid = np.array(sorted(r[0] for r in rows), np.uint64)
    seq = np.array([r[1] for r in rows], np.int64)
    seq[: len(seq) // 2] = np.arange(1, len(seq) // 2 + 1)             # a clean run, then anything
    want = np.array([(int(a) % every + int(b) % every) % every == 0 for a, b in zip(mid, seq)])
    e = np.int64(every)
    assert np.array_equal(sample_mask(mid, seq, e), want)
    assert np.array_equal(np.concatenate([sample_mask(mid[:cut], seq[:cut], e), sample_mask(mid[cut:], seq[cut:], e)]),
                          want)


def test_key_order_is_checked_across_shard_boundaries():
    def q(first, last):
        return {"ends": {"arrival_events_5B": [first, last]}}
    ok = [q([[0, 0], [1, 1]], [[0, 3], [5, 9]]), q([[0, 3], [5, 10]], [[1, 0], [9, 2]]),     # shared row group
          {"ends": {"arrival_events_5B": None}}, q([[1, 1], [9, 3]], [[1, 2], [12, 1]])]        # empty, next group
    assert S5._order_breaks(ok) == []
    bad = [q([[0, 0], [1, 1]], [[0, 3], [5, 9]]), q([[0, 4], [5, 9]], [[0, 5], [7, 1]])]          # key repeats
    assert S5._order_breaks(bad) == ["arrival_events_5B"]
    back = [q([[0, 0], [1, 1]], [[0, 3], [5, 9]]), q([[0, 2], [6, 1]], [[0, 5], [7, 1]])]        # group behind
    assert S5._order_breaks(back) == ["arrival_events_5B"]


def test_declared_shard_and_merge_paths():
    _, outs = stateio.declare("5B.S5", shard=(1, 3))
    assert outs == {"report": "results/5B/_shards/S5/1-of-3/run_report.json",
                    "partial": "results/5B/_shards/S5/1-of-3/partial.json"}
    ins, outs = stateio.declare("5B.S5", merge=_jobs(3))
    one_ins, one_outs = stateio.declare("5B.S5")
    assert outs == one_outs and {"bundle", "flag", "summary", "report"} <= outs.keys()
    assert one_ins.items() <= ins.items()                     # the merge finishes what one job does
    assert [ins[f"shard{k}_partial"] for k in range(3)] == [f"results/5B/_shards/S5/{k}-of-3/partial.json"
                                                          for k in range(3)]


@pytest.mark.parametrize("n", [3])
def test_sharded_s5_writes_the_bundle_and_flag_of_one_job(world_copy, world_a, n):
    res = world_copy.results
    _clear(res)
    _run_sharded(world_copy, n)
    a, b = _files(world_a.results), _files(res)
    assert "5B/_passed.flag" in a and "5B/validation/index.json" in a
    assert a.keys() == b.keys() and [k for k in a if a[k] != b[k]] == []
    parts = [json.loads((res / f"5B/_shards/S5/{k}-of-{n}/partial.json").read_text()) for k in range(n)]
    arrivals = [s["audit"]["v"]["arrivals"] for q in parts for s in q["scenarios"].values()]
    assert all(x > 0 for x in arrivals)                       # every shard audited some of the arrivals


def test_tampered_arrival_in_one_shards_merchants_fails_the_merge_closed(world_copy):
    """An arrival of a merchant of shard 1 of 3 moved out of its bucket (re-sealed, so only the audit can
    see it): shard 1 counts it, the merge fails with the usual code and no flag."""
    res = world_copy.results
    d = res / "5B/arrival_events"
    f = next(d.rglob("*.parquet"))
    pf = pq.ParquetFile(f)
    t = pf.read()
    sid = f.parent.name.split("=", 1)[1]
    mids = pq.read_table(next((res / "5B/s1_grouping").rglob(f"scenario_id={sid}/*.parquet"))).column("merchant_id")
    lo, hi = S5.merchant_range(mids.to_numpy(), (1, 3))
    m = t.column("merchant_id").to_numpy()
    i = int(np.flatnonzero((m >= lo) & (m < hi))[0])
    ts = t.column("ts_utc").to_pylist()
    ts[i] = ts[i] + dt.timedelta(hours=5)
    t = t.set_column(t.schema.get_field_index("ts_utc"), t.schema.field("ts_utc"),
                     pa.array(ts, t.schema.field("ts_utc").type))
    pq.write_table(t, f, row_group_size=pf.metadata.row_group(0).num_rows)        # keep the row groups
    reseal(d)
    _clear(res)
    with pytest.raises(EngineFailure) as e:
        _run_sharded(world_copy, 3)
    assert e.value.code == "5B.S5.VALIDATION_FAILED" and "ts_outside_bucket" in e.value.line()
    assert not (res / "5B/_passed.flag").exists()
    bad = [json.loads((res / f"5B/_shards/S5/{k}-of-3/partial.json").read_text())["scenarios"][sid]["audit"]["v"]
           ["ts_outside_bucket"] for k in range(3)]
    assert bad == [0, 1, 0]


def test_unreadable_arrivals_fail_closed_alike_in_one_job_and_in_shards(world_copy):
    """A damaged arrivals file (same size, so only reading it tells): every shard that reads it hands the
    failure on, and the merge writes the failing bundle one job writes, without a flag."""
    res = world_copy.results
    part = next((res / "5B/arrival_events").rglob("*.parquet"))
    part.write_bytes(part.read_bytes()[:200] + b"\0" * (part.stat().st_size - 200))
    _clear(res)
    with pytest.raises(EngineFailure) as e:
        S5.run(world_copy.for_state("5B.S5"))
    assert e.value.code == "5B.S5.VALIDATION_FAILED" and "inputs_readable" in e.value.line()
    one = _files(res)
    _clear(res)
    with pytest.raises(EngineFailure) as e:
        _run_sharded(world_copy, 3)
    assert e.value.code == "5B.S5.VALIDATION_FAILED" and "inputs_readable" in e.value.line()
    assert "5B/_passed.flag" not in one and _files(res) == one


def test_snakemake_plans_shard_jobs_and_a_merge_for_s5(tmp_path):
    """`--config shards=3`: three S5 shard jobs and a merge, no one-job rule (dry run)."""
    wd = tmp_path / "wd"
    wd.mkdir()
    shutil.copy(ROOT / "Snakefile", wd)
    for d in ("rules", "scripts", "config", "contracts", "report", "envs", "profiles"):
        shutil.copytree(ROOT / d, wd / d)
    r = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--config", "preset=tiny", "shards=3"],
                       cwd=wd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    assert out.count("rule seg5B_s5_shard:") == 3 and out.count("rule seg5B_s5_merge:") == 1
    assert "rule seg5B_s5_validation:" not in out
