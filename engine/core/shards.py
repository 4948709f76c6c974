"""Split a heavy state over n jobs by merchant, and merge their outputs into exactly the bytes one
job writes (issue: cluster execution).

A `shardable` state (contracts/states.yaml) run as shard k of n (`ctx.io.shard`) keeps the
merchants whose rank among the sorted merchant ids falls in the k-th of n equal ranges, and
writes its datasets, trace and report under `results/<SEG>/_shards/<S>/<k>-of-<n>/`. Rows of a
merchant never depend on other merchants (RNG streams are keyed by merchant, `arrival_seq` counts
per merchant), so the shards' rows, concatenated per partition in shard order, are the rows of
the one-job run in the one-job order; the core writer's files depend only on that row stream
(fixed row groups and parts), so the merged dataset has the same bytes. RNG traces add up, the
first counter coming from the first shard that drew and the last from the last.
"""
from __future__ import annotations

import json

import numpy as np

from . import datasets, rng
from .context import RunContext
from .identity import dumps
from .publish import iter_batches, partitions, publish_text
from .stateio import produced_by


def merchant_mask(merchant_ids: np.ndarray, shard: tuple[int, int] | None) -> np.ndarray:
    """True for the merchants of shard k of n: rank among the distinct ids in [k·M/n, (k+1)·M/n)."""
    m = np.asarray(merchant_ids, np.uint64)
    if shard is None:
        return np.ones(len(m), bool)
    k, n = shard
    u = np.unique(m)
    rank = np.searchsorted(u, m)
    return (rank * n) // max(len(u), 1) == k


def _n_shards(ctx: RunContext) -> int:
    return sum(1 for name in ctx.io.inputs if name.startswith("shard") and name.endswith("_report"))


def merge(ctx: RunContext, code: str) -> None:
    """Merge the n shards of the running state into its declared outputs."""
    n = _n_shards(ctx)
    state = ctx.io.state_id
    for d in produced_by(state):
        paths = [ctx.io.input(f"shard{k}_{d}") for k in range(n)]
        parts = sorted({tuple(sorted(p.items())) for path in paths for p in partitions(path, code, d)})
        with datasets.writer(ctx, d, code) as w:
            for part in parts:
                sub = "/".join(f"{k}={v}" for k, v in part)
                for path in paths:
                    for t in iter_batches(path, code, d, partition=dict(part)):
                        w.write(t, subdir=sub)
    reports = [json.loads(ctx.io.input(f"shard{k}_report").read_text()) for k in range(n)]
    if ctx.io.has_input("shard0_trace"):
        trace = rng.RngTrace()
        for k in range(n):
            trace.merge(json.loads(ctx.io.input(f"shard{k}_trace").read_text()))
        publish_text(dumps(trace.to_dict()), ctx.io.output("trace"), code, overwrite=True)
    counts: dict = {}
    for r in reports:
        for key, v in r.get("counts", {}).items():
            counts[key] = counts.get(key, 0) + v if isinstance(v, (int, float)) else v
    rep = {**reports[0], "counts": counts, "shards": reports}
    publish_text(dumps(rep), ctx.io.output("report"), code, overwrite=True)

