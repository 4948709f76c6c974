"""Split a heavy state over jobs by scenario and merchant, and merge their outputs into exactly the
bytes one job writes (issue: cluster execution).

A `shardable` state (contracts/states.yaml) run as one scenario (`ctx.io.scenario`) and merchant
shard k of n (`ctx.io.shard`) keeps that scenario and the merchants whose rank among the sorted
merchant ids falls in the k-th of n equal ranges, and writes its datasets, trace and report under
`results/<SEG>/_shards/<S>/<scenario>/<k>-of-<n>/`. Scenarios never depend on one another (RNG
streams are keyed by scenario, every split dataset is partitioned by scenario_id), nor do the rows of
a merchant on other merchants (streams keyed by merchant, `arrival_seq` counts per merchant), so the
shards' rows, concatenated per partition in the one job's order (scenario, then shard), are the rows
of the one-job run; the core writer's files depend only on that row stream
(fixed row groups and parts), so the merged dataset has the same bytes. RNG traces add up, the
first counter coming from the first shard that drew and the last from the last; a state that
loops over scenarios writes its shard trace per scenario (`write_trace`), merged scenario by
scenario, so the counters are those of the one-job run even where a shard draws nothing in one
scenario. A dataset not split by merchant (`shard_whole` in contracts/states.yaml, e.g. 5A's
scenario calendar) is written whole by every shard; the merge checks they agree and keeps shard 0's.
A state's report may hold whole-table figures: its merge passes `report` to combine the shards'.
"""
from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable

import numpy as np

from . import contracts, datasets, rng
from .context import RunContext
from .errors import EngineFailure
from .identity import dumps
from .publish import MANIFEST, commit_dir, iter_batches, partitions, publish_text, sealed_files, tmp_sibling
from .stateio import produced_by, states


def merchant_mask(merchant_ids: np.ndarray, shard: tuple[int, int] | None) -> np.ndarray:
    """True for the merchants of shard k of n: rank among the distinct ids in [k·M/n, (k+1)·M/n)."""
    m = np.asarray(merchant_ids, np.uint64)
    if shard is None:
        return np.ones(len(m), bool)
    k, n = shard
    u = np.unique(m)
    rank = np.searchsorted(u, m)
    return (rank * n) // max(len(u), 1) == k


def own_scenarios(ctx: RunContext, sids: list[str], code: str) -> list[str]:
    """The scenarios this job computes: its own (a shard job of one scenario) or all of `sids`."""
    sid = ctx.io.scenario
    if sid is None:
        return sids
    if sid not in sids:
        raise EngineFailure(f"{code}.SHARD_SCENARIO_UNKNOWN", "shard job for a scenario the upstream data does "
                            "not hold; config `scenarios` changed since it was built: rebuild from 5A",
                            {"scenario_id": sid, "scenarios": ",".join(sids)})
    return [sid]


def _n_shards(ctx: RunContext) -> int:
    return sum(1 for name in ctx.io.inputs if name.startswith("shard") and name.endswith("_report"))


def write_trace(ctx: RunContext, code: str, trace: rng.RngTrace, by_scenario: dict[str, rng.RngTrace]) -> dict:
    """Publish the state's trace; a shard job writes it per scenario (`{"by_scenario": [[sid, trace]]}`,
    scenarios in run order) so that `merge` adds the shards up scenario by scenario. Returns the total."""
    d = trace.to_dict()
    out = d if ctx.io.shard is None else {"by_scenario": [[sid, t.to_dict()] for sid, t in by_scenario.items()]}
    publish_text(dumps(out), ctx.io.output("trace"), code, overwrite=True)
    return d


def _merged_trace(traces: list[dict]) -> rng.RngTrace:
    out = rng.RngTrace()
    if all("by_scenario" in t for t in traces):
        per = [dict(t["by_scenario"]) for t in traces]
        for sid in dict.fromkeys(sid for t in traces for sid, _ in t["by_scenario"]):
            for p in per:                                  # scenario-major, then shard order: one job's order
                out.merge(p.get(sid, {}))
    else:
        for t in traces:
            out.merge(t)
    return out


def _copy_whole(ctx: RunContext, d: str, paths: list, code: str) -> None:
    """A dataset every shard writes whole: the shards' manifests (every file's SHA-256) must agree."""
    for p in paths:
        sealed_files(p, code, d)                            # present and whole
    mans = [(p / MANIFEST).read_text() for p in paths]
    if any(m != mans[0] for m in mans):
        raise EngineFailure(f"{code}.SHARDS_DISAGREE", "shards wrote different copies of a dataset that is not "
                            "split by merchant; rerun the shard jobs", {"dataset": d})
    target = ctx.io.output(d)
    tmp = tmp_sibling(target)
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(paths[0], tmp)
    commit_dir(tmp, target, code)


def add_reports(reports: list[dict], whole: Iterable[str] = (), add: Iterable[str] = ("counts",)) -> dict:
    """Shard 0's report with the figures under the keys `add` (e.g. counts, per-scenario stats) added up
    over the shards, nested dicts key by key (a key only some shards have, e.g. a scenario, from those);
    a key in `whole` is a figure of the whole table that every shard having it computes alike: kept,
    checked. Warnings: every shard's, once each."""
    whole = set(whole)

    def plus(vals: list, key: str):
        vals = [v for v in vals if v is not None]
        if isinstance(vals[0], dict):
            keys = dict.fromkeys(k for v in vals for k in v)                 # first seen: shard order
            return {k: plus([v.get(k) for v in vals], k) for k in keys}
        if key in whole:
            if any(v != vals[0] for v in vals):
                raise EngineFailure("CORE.SHARDS.REPORT_DISAGREE", "shards report different whole-table figures",
                                    {"key": key, "values": vals})
            return vals[0]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
            return sum(vals)
        return vals[0]
    out = {**reports[0], **{k: plus([r.get(k) for r in reports], k) for k in add if k in reports[0]}}
    out["warnings"] = list(dict.fromkeys(w for r in reports for w in r.get("warnings", [])))
    return out


def merge(ctx: RunContext, code: str, report: Callable[[list[dict]], dict] | None = None) -> None:
    """Merge the n shards of the running state into its declared outputs; `report(shard reports)` gives
    the merged report's figures (default: counts added up)."""
    n = _n_shards(ctx)
    state = ctx.io.state_id
    whole = set(states()[state].get("shard_whole", []))
    for d in produced_by(state):
        paths = [ctx.io.input(f"shard{k}_{d}") for k in range(n)]
        if d in whole:
            _copy_whole(ctx, d, paths, code)
            continue
        parts = sorted({tuple(sorted(p.items())) for path in paths for p in partitions(path, code, d)})
        if contracts.entry(d).get("partition_keys"):       # an empty shard's placeholder part is no partition
            parts = [p for p in parts if p]
        with datasets.writer(ctx, d, code) as w:
            for part in parts:
                sub = "/".join(f"{k}={v}" for k, v in part)
                for path in paths:
                    for t in iter_batches(path, code, d, partition=dict(part)):
                        w.write(t, subdir=sub)
    reports = [json.loads(ctx.io.input(f"shard{k}_report").read_text()) for k in range(n)]
    rep = report(reports) if report is not None else add_reports(reports)
    if ctx.io.has_input("shard0_trace"):
        trace = _merged_trace([json.loads(ctx.io.input(f"shard{k}_trace").read_text()) for k in range(n)])
        publish_text(dumps(trace.to_dict()), ctx.io.output("trace"), code, overwrite=True)
        rep["rng"] = trace.to_dict()
    publish_text(dumps({**rep, "shards": reports}), ctx.io.output("report"), code, overwrite=True)
