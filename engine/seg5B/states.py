"""5B states S0-S4: read the declared inputs, call the logic modules beside this one in the
chapter's order, publish (chapter 5B §3). Every state loops over the scenarios 5A published.

Large tables never load as frames: 5A's λ surface and S3's counts stream in row groups into flat
numpy columns (`keyed_rows`), S3 and S4 write through the core batch writer, and S4 keeps one
batch of arrivals in memory (~`batch_target_arrivals`). S2's per-row quantities (target λ,
realised λ) are columns of S3's table (the factor is S2's per-group field), not a second copy of the λ surface.
"""
from __future__ import annotations

import hashlib
import json
import time

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import tzdata

from engine.core import civil_time, datasets, rng, shards, tzcache
from engine.core.context import RunContext
from engine.core.errors import EngineFailure
from engine.core.gate import run_gate
from engine.core.segment import Segment

from . import arrivals as A
from . import logic as L
from .keyed_rows import DomainIndex, KeyedRows, domain_of, read_keyed, vocab_codes
from .policies import CHANNELS, NAMES, load_policies

SEG = "5B"
_SEG = Segment(SEG)
KEY = ["merchant_id", "zone_representation", "channel_group"]
CHUNK = 4_000_000                     # rows per Arrow table handed to the writer (S2, S3)


def policies(ctx: RunContext, state: str, classes=None) -> dict[str, dict]:
    kw = {} if classes is None else {"classes": classes}
    return load_policies(ctx.io.policy(SEG, NAMES[0]).parent, state, **kw)


def scenarios(ctx: RunContext, code: str) -> list[dict]:
    man = datasets.read(ctx, "scenario_manifest_5A", code).sort("scenario_id")
    return man.to_dicts()


def derive(ctx: RunContext, scenario_id: str) -> L.Derive:
    return L.stream_deriver(ctx.receipt["manifest_fingerprint"], ctx.receipt["parameter_hash"], ctx.seed, scenario_id)


def _part(sid: str) -> dict[str, str]:
    return {"scenario_id": sid}


def _own(ctx: RunContext, dataset_id: str, sid: str, code: str) -> pl.DataFrame:
    """One scenario's partition of a small dataset of this segment."""
    return datasets.to_polars(pa.concat_tables(list(datasets.batches(ctx, dataset_id, code, partition=_part(sid)))))


def grid_of(ctx: RunContext, sid: str, code: str) -> L.Grid:
    g = _own(ctx, "s1_time_grid_5B", sid, code).sort("bucket_index")
    s = g["bucket_start_utc"].dt.epoch("us").to_numpy()
    return L.Grid(int(s[0]), int(g["bucket_duration_seconds"][0]) * 1_000_000, g.height)


def _dict(codes: np.ndarray, values) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32), pa.int32()), pa.array(values, pa.string()))


def _keyed_tables(r: KeyedRows, sl: slice, cols: dict[str, np.ndarray], schema: pa.Schema) -> pa.Table:
    data = {"merchant_id": pa.array(r.mid[sl], pa.uint64()),
            "zone_representation": _dict(r.zone[sl], r.zones),
            "channel_group": _dict(r.chan[sl], CHANNELS),
            "bucket_index": pa.array(r.bucket[sl].astype(np.int32), pa.int32())}
    data.update({k: pa.array(v[sl]) for k, v in cols.items()})
    return pa.Table.from_arrays([data[f.name] for f in schema], schema=schema)


# ---------------------------------------------------------------- S0

def s0_gate(ctx: RunContext) -> None:
    code = "5B.S0"
    rep = _SEG.report("S0")
    policies(ctx, "S0")
    scen = scenarios(ctx, code)
    up = run_gate(ctx, code, {"tzdata_version": tzdata.IANA_VERSION,
                              "scenario_set": [s["scenario_id"] for s in scen]})
    rep.count(upstream_verified=len(up), scenarios=len(scen))
    rep.rng(None)
    rep.write(_SEG.report_path(ctx, "S0"))


# ---------------------------------------------------------------- S1

def s1_grid_grouping(ctx: RunContext) -> None:
    code = "5B.S1"
    rep = _SEG.report("S1")
    prof = datasets.read(ctx, "merchant_zone_profile_5A", code)
    p = policies(ctx, "S1", classes=sorted(prof["demand_class"].unique()))
    cls = datasets.read(ctx, "virtual_classification_3B", code)
    grids, groups, reports = [], [], {}
    for s in scenarios(ctx, code):
        sid = s["scenario_id"]
        grid, g = L.time_grid(s["horizon_start_utc"], s["horizon_end_utc"], s["bucket_duration_seconds"],
                              p["time_grid_policy_5B"], s["is_baseline"], s["is_stress"])
        # the domain is the keys of bucket 0 (5A writes every key for every bucket; S3 checks that)
        first = (t.filter(pc.equal(t.column("utc_horizon_bucket_index"), 0)) for t in datasets.batches(
            ctx, "merchant_zone_scenario_utc_5A", code, partition=_part(sid), columns=[*KEY, "utc_horizon_bucket_index"]))
        r = read_keyed(first, "utc_horizon_bucket_index", (), f"{code}.DOMAIN_ALIGN_FAILED")
        dom, _ = domain_of(r, f"{code}.DOMAIN_ALIGN_FAILED")
        grp, gr = L.grouping(dom, prof, cls, sid, s["is_baseline"], p["grouping_policy_5B"])
        grids.append(grid.with_columns(pl.lit(sid).alias("scenario_id")))
        groups.append(grp.with_columns(pl.lit(sid).alias("scenario_id")))
        reports[sid] = {**gr, "buckets": g.H, "domain_rows": dom.height, "lambda_rows": dom.height * g.H}
        for miss in gr["realism_misses"]:
            rep.warn(f"{sid}: grouping realism target missed: {miss}")
    datasets.publish(ctx, pl.concat(grids), "s1_time_grid_5B", code, partition_by="scenario_id")
    datasets.publish(ctx, pl.concat(groups), "s1_grouping_5B", code, partition_by="scenario_id")
    rep.count(scenarios=len(reports))
    rep.data["scenarios"] = reports
    rep.rng(None)
    rep.write(_SEG.report_path(ctx, "S1"))


# ---------------------------------------------------------------- S2

def s2_latent(ctx: RunContext) -> None:
    code = "5B.S2"
    rep = _SEG.report("S2")
    p = policies(ctx, "S2")
    lg = p["arrival_lgcp_config_5B"]
    trace, by_sid = rng.RngTrace(), {}
    stats = {}
    with datasets.writer(ctx, "s2_latent_field_5B", code) as w:
        for sid in shards.own_scenarios(ctx, datasets.scenario_partitions(ctx, "s1_grouping_5B", code), code):
            H = grid_of(ctx, sid, code).H
            grp = _own(ctx, "s1_grouping_5B", sid, code)
            groups, f, t = L.latent_factors(grp, H, lg, derive(ctx, sid))
            trace.merge(t)
            by_sid[sid] = t
            G = groups.height
            gid = groups["group_id"].to_list()
            per = max(1, CHUNK // max(H, 1))
            for a in range(0, G, per):
                z = min(G, a + per)
                idx = np.repeat(np.arange(a, z), H)
                w.write(pa.table({"group_id": _dict(idx, gid),
                                  "bucket_index": pa.array(np.tile(np.arange(H, dtype=np.int32), z - a)),
                                  "sigma": pa.array(groups["sigma"].to_numpy()[idx]),
                                  "length_scale": pa.array(groups["length_scale"].to_numpy()[idx]),
                                  "lambda_random_component": pa.array(f[a:z].ravel())}),
                        subdir=f"scenario_id={sid}")
            stats[sid] = {"groups": G, "buckets": H, "mean_factor": float(f.mean()) if f.size else 1.0}
    rep.count(scenarios=len(stats))
    rep.data["scenarios"] = stats
    rep.rng(shards.write_trace(ctx, code, trace, by_sid))
    rep.write(_SEG.report_path(ctx, "S2"))


def _merged_report(reports: list[dict], whole=()) -> dict:
    """A 5B state's report from its shards': counts and per-scenario figures added up (`whole`: figures
    of a scenario's whole table, alike in its shards), the scenario count that of the merged scenarios."""
    rep = shards.add_reports(reports, whole=whole, add=("counts", "scenarios"))
    rep["counts"]["scenarios"] = len(rep["scenarios"])
    return rep


def s2_merge(ctx: RunContext) -> None:
    """S2 run as one job per scenario: their latent fields concatenated in scenario order."""
    shards.merge(ctx, "5B.S2", report=_merged_report)


def latent_matrix(ctx: RunContext, sid: str, code: str, H: int) -> tuple[list[str], np.ndarray]:
    """(group ids sorted, factor matrix (G, H)) of one scenario from s2_latent_field_5B, which S2 writes
    in (group_id, bucket) order: checked, not sorted."""
    vocab: dict[str, int] = {}
    g, b, f = [], [], []
    for t in datasets.batches(ctx, "s2_latent_field_5B", code, partition=_part(sid),
                              columns=["group_id", "bucket_index", "lambda_random_component"]):
        g.append(vocab_codes(t.column("group_id"), vocab))
        b.append(t.column("bucket_index").to_numpy())
        f.append(t.column("lambda_random_component").to_numpy())
    gids = list(vocab)
    G = len(gids)
    g = np.concatenate(g) if g else np.zeros(0, np.int32)
    b = np.concatenate(b) if b else np.zeros(0, np.int32)
    ok = (len(g) == G * H and gids == sorted(gids) and np.array_equal(g, np.repeat(np.arange(G), H))
          and np.array_equal(b, np.tile(np.arange(H), G)))
    if not ok:
        raise EngineFailure(f"{code}.LATENT_FIELD_INCOMPLETE", "s2_latent_field_5B is not one row per (group, bucket) "
                            "in order; rerun 5B.S2", {"scenario_id": sid, "rows": len(g), "want": G * H})
    return gids, (np.concatenate(f) if f else np.zeros(0)).reshape(G, H)


# ---------------------------------------------------------------- S3

def s3_counts(ctx: RunContext) -> None:
    code = "5B.S3"
    rep = _SEG.report("S3")
    p = policies(ctx, "S3")
    cc, lg = p["arrival_count_config_5B"], p["arrival_lgcp_config_5B"]
    trace, by_sid = rng.RngTrace(), {}
    stats = {}
    schema = datasets.writer_schema("s3_bucket_counts_5B")
    with datasets.writer(ctx, "s3_bucket_counts_5B", code) as w:
        for sid in shards.own_scenarios(ctx, datasets.scenario_partitions(ctx, "s1_grouping_5B", code), code):
            H = grid_of(ctx, sid, code).H
            grp = _own(ctx, "s1_grouping_5B", sid, code)
            gids, f = latent_matrix(ctx, sid, code, H)
            gpos = {g: i for i, g in enumerate(gids)}
            miss = set(grp["group_id"].unique()) - set(gpos)
            if miss:
                raise EngineFailure(f"{code}.LATENT_FIELD_INCOMPLETE", "group without a latent series; rerun 5B.S2",
                                    {"scenario_id": sid, "group_id": sorted(miss)[0]})
            c_group = grp["group_id"].replace_strict(gpos, return_dtype=pl.Int64).to_numpy()
            dom = grp.select(KEY).with_columns(pl.col("merchant_id").cast(pl.UInt64))
            kappa = L.count_params(grp, cc)
            keys = derive(ctx, sid)("bucket_count", L.coarse_key_strings(dom))
            # one job of several: this shard's merchants only
            keep_c = shards.merchant_mask(dom["merchant_id"].to_numpy(), ctx.io.shard) if ctx.io.shard is not None else None
            t_sid = rng.RngTrace()
            st = {"rows": 0, "arrivals": 0, "nonzero_rows": 0, "capped_rows": 0}
            sums = []                                   # (λ target, λ realised) per row group: whole-table figures
            for ch in lambda_chunks(ctx, sid, code, dom, H):
                lam = ch["lam"]
                _, mu = L.realised_intensity(ch["c"], ch["b"], lam, c_group, f, float(lg["clipping"]["lambda_max"]))
                sums.append((float(np.sum(lam)), float(np.sum(mu))))
                r, c, b = ch["r"], ch["c"], ch["b"]
                if keep_c is not None:
                    keep = keep_c[c]
                    r, c, b, lam, mu = r.subset(keep), c[keep], b[keep], lam[keep], mu[keep]
                n, capped, t = L.bucket_counts(c, b, mu, kappa, keys, cc)
                t_sid.merge(t)
                w.write(_keyed_tables(r, slice(0, len(n)), {"lambda_baseline": lam, "lambda_realised": mu,
                                                           "count_N": n, "capped": capped}, schema),
                        subdir=f"scenario_id={sid}")
                st["rows"] += len(n)
                st["arrivals"] += int(n.sum())
                st["nonzero_rows"] += int(np.count_nonzero(n))
                st["capped_rows"] += int(capped.sum())
            trace.merge(t_sid)
            by_sid[sid] = t_sid
            stats[sid] = {**st, "lambda_target": float(sum(x for x, _ in sums)),
                          "lambda_realised": float(sum(y for _, y in sums))}
            ctx.logger.info(f"{code} {sid}: {st['rows']:,} λ rows -> {st['arrivals']:,} arrivals")
    rep.count(scenarios=len(stats), arrivals=sum(s["arrivals"] for s in stats.values()))
    rep.data["scenarios"] = stats
    rep.rng(shards.write_trace(ctx, code, trace, by_sid))
    rep.write(_SEG.report_path(ctx, "S3"))


def lambda_chunks(ctx: RunContext, sid: str, code: str, dom: pl.DataFrame, H: int):
    """5A's λ rows of one scenario, one row group at a time, as rows of S1's domain: {"r": keyed rows,
    "c": domain row, "b": bucket, "lam": λ}. Checked as they stream: every key is in the domain, rows are
    strictly in (key, bucket) order across row groups, buckets inside the grid; at the end every domain
    key has exactly H rows. S3 never holds the whole λ table (52M rows per scenario on full)."""
    didx = DomainIndex(dom, f"{code}.DOMAIN_ALIGN_FAILED")
    per_key = np.zeros(dom.height, np.int64)
    last = -1
    for t in datasets.batches(ctx, "merchant_zone_scenario_utc_5A", code, partition=_part(sid),
                              columns=[*KEY, "utc_horizon_bucket_index", "lambda_utc_scenario"]):
        r = read_keyed([t], "utc_horizon_bucket_index", ("lambda_utc_scenario",), f"{code}.DOMAIN_ALIGN_FAILED")
        if not len(r.mid):
            continue
        c = didx.rows(r, f"{code}.DOMAIN_ALIGN_FAILED")
        b = r.bucket
        if b.min() < 0 or b.max() >= H:
            raise EngineFailure(f"{code}.TIME_GRID_INCOMPLETE", "5A λ row outside the time grid; rebuild 5A",
                                {"scenario_id": sid, "H": H, "bucket": int(b.max() if b.max() >= H else b.min())})
        g = c * H + b                                   # the (key, bucket) order as one integer
        if g[0] <= last or np.any(np.diff(g) <= 0):
            raise EngineFailure(f"{code}.DOMAIN_ALIGN_FAILED", "5A λ rows are not unique and sorted by (merchant, "
                                "zone, channel, bucket); rebuild 5A", {"scenario_id": sid})
        last = int(g[-1])
        per_key += np.bincount(c, minlength=dom.height)
        yield {"r": r, "c": c, "b": b, "lam": r.values["lambda_utc_scenario"].astype(np.float64)}
    if np.any(per_key == 0):
        raise EngineFailure(f"{code}.DOMAIN_ALIGN_FAILED", "5A λ domain differs from s1_grouping_5B: keys without "
                            "λ rows; rerun 5B.S1", {"scenario_id": sid, "keys_without_rows":
                                                    int(np.count_nonzero(per_key == 0)), "groups": dom.height})
    if np.any(per_key != H):
        raise EngineFailure(f"{code}.TIME_GRID_INCOMPLETE", "5A λ rows do not cover the time grid once per key; "
                            "rebuild 5A", {"scenario_id": sid, "H": H,
                                           "keys_not_H_rows": int(np.count_nonzero(per_key != H))})


def s3_merge(ctx: RunContext) -> None:
    """S3 run as shard jobs (scenario x merchant shard): counts concatenated, figures added up except the
    λ sums, which every shard of a scenario takes over its whole table (engine.core.shards)."""
    shards.merge(ctx, "5B.S3", report=lambda reps: _merged_report(reps, whole=("lambda_target", "lambda_realised")))


# ---------------------------------------------------------------- S4 (and the routing inputs S5 re-reads)

def routing_plan(ctx: RunContext, code: str, scen: list[L.Grid]) -> A.RoutingPlan:
    """2B's site alias, 3B's edges and edge alias (blob checked against the sealed index), the tz cache
    (checked to cover every scenario's horizon ±1 day)."""
    cache_t = datasets.read_table(ctx, "tz_timetable_cache", code)
    man = json.loads((ctx.io.input("tz_timetable_cache") / "_manifest.json").read_text())
    cache = civil_time.flatten_cache(cache_t, code)
    if scen:
        lo = min(g.h0_us for g in scen) // 1_000_000 - 86400
        hi = max(g.h0_us + g.H * g.d_us for g in scen) // 1_000_000 + 86400
        tzcache.check_coverage(man.get("tz_cache", {}), cache.tzids,
                               _iso(lo), _iso(hi), short_code=f"{code}.DST_MAPPING_FAILED",
                               missing_code=f"{code}.DST_MAPPING_FAILED")
    index = datasets.read(ctx, "edge_alias_index_3B", code)
    blob = ctx.io.input("blob").read_bytes()
    glob = index.filter(pl.col("scope") == "GLOBAL")
    if glob.height != 1 or glob["merchant_alias_checksum"][0] != hashlib.sha256(blob).hexdigest():
        raise EngineFailure(f"{code}.EDGE_BLOB_DIGEST_MISMATCH", "edge alias blob differs from the checksum in "
                            "edge_alias_index_3B; rebuild segment 3B", {"file": str(ctx.io.input("blob"))})
    edges = datasets.read(ctx, "edge_catalogue_3B", code).join(
        A.edge_alias_columns(index.filter(pl.col("scope") == "MERCHANT"), blob),
        on=["merchant_id", "edge_seq_index"], how="left", maintain_order="left")
    if edges["prob_q"].null_count():
        raise EngineFailure(f"{code}.EDGE_RESOLUTION_FAILED", "edge without an alias slot in the 3B blob", {})
    return A.build_routing_plan(datasets.read(ctx, "s1_site_weights", code), datasets.read(ctx, "s2_alias_table", code),
                                datasets.read(ctx, "virtual_classification_3B", code),
                                datasets.read(ctx, "virtual_settlement_3B", code), edges, cache)


def _iso(unix_s: int) -> str:
    import datetime as dt
    return dt.datetime.fromtimestamp(unix_s, dt.UTC).strftime("%Y-%m-%d")


class _Progress:
    """Logs S4's progress about every 10% of a scenario's S3 rows read, with the arrivals written so far
    (users watch long states)."""

    def __init__(self, ctx: RunContext, sid: str, total_rows: int):
        self.ctx, self.sid, self.total, self.t0 = ctx, sid, max(total_rows, 1), time.monotonic()
        self.rows = self.arrivals = 0
        self.next = self.total / 10

    def read(self, n: int) -> None:
        self.rows += n
        if self.rows >= self.next:
            dt_s = max(time.monotonic() - self.t0, 1e-9)
            self.ctx.logger.info(f"5B.S4 {self.sid}: {100 * self.rows / self.total:.0f}% of S3 rows read, "
                                 f"{self.arrivals:,} arrivals written ({self.arrivals / dt_s / 1e6:.2f}M/s)")
            self.next = self.rows + self.total / 10


def count_chunks(ctx: RunContext, sid: str, code: str, dom: pl.DataFrame, keep_c: np.ndarray | None,
                 prog: _Progress):
    """S3's rows with count_N > 0, one row group at a time, as rows of the scenario's domain ("c", "b",
    "n", "lam"); with `keep_c`, only the domain rows it marks (a shard's merchants)."""
    didx = DomainIndex(dom, f"{code}.BUCKET_COUNT_MISMATCH")
    for t in datasets.batches(ctx, "s3_bucket_counts_5B", code, partition=_part(sid),
                              columns=[*KEY, "bucket_index", "lambda_realised", "count_N"]):
        prog.read(t.num_rows)
        r = read_keyed([t], "bucket_index", ("lambda_realised", "count_N"), f"{code}.BUCKET_COUNT_MISMATCH",
                       keep="count_N")
        c = didx.rows(r, f"{code}.BUCKET_COUNT_MISMATCH")
        ch = {"c": c, "b": r.bucket, "n": r.values["count_N"].astype(np.int64),
              "lam": r.values["lambda_realised"].astype(np.float64, copy=False)}
        yield ch if keep_c is None else {k: v[keep_c[c]] for k, v in ch.items()}


def _summary_table(bt: dict, cp: A.CoarsePlan, schema: pa.Schema) -> pa.Table:
    """s4_arrival_summary_5B rows of one S4 batch (its S3 rows, S3 order)."""
    c, n, v = bt["c"], bt["n"], bt["virtual"]
    data = {"merchant_id": pa.array(cp.c_mid[c], pa.uint64()),
            "zone_representation": _dict(cp.c_zone[c], cp.zones),
            "channel_group": _dict(cp.c_chan[c], CHANNELS),
            "bucket_index": pa.array(bt["b"].astype(np.int32), pa.int32()),
            "count_N": pa.array(n.astype(np.int32)), "count_physical": pa.array((n - v).astype(np.int32)),
            "count_virtual": pa.array(v.astype(np.int32))}
    return pa.Table.from_arrays([data[f.name] for f in schema], schema=schema)


def _s3_rows(ctx: RunContext, sid: str, code: str) -> int:
    man = json.loads((ctx.io.input("s3_bucket_counts_5B") / "_manifest.json").read_text())
    return sum(f["rows"] for f in man["files"] if f["path"].startswith(f"scenario_id={sid}/"))


def s4_merge(ctx: RunContext) -> None:
    """S4 run as shard jobs (scenario x merchant shard): their outputs merged into S4's, counts and
    per-scenario figures added up (engine.core.shards)."""
    shards.merge(ctx, "5B.S4", report=_merged_report)


def s4_arrivals(ctx: RunContext) -> None:
    code = "5B.S4"
    rep = _SEG.report("S4")
    p = policies(ctx, "S4")
    sids = datasets.scenario_partitions(ctx, "s1_grouping_5B", code)
    grids = {sid: grid_of(ctx, sid, code) for sid in sids}
    plan = routing_plan(ctx, code, list(grids.values()))
    bt = int(p["arrival_time_placement_policy_5B"]["batch_target_arrivals"])
    trace, by_sid = rng.RngTrace(), {}
    stats = {}
    sschema = datasets.writer_schema("s4_arrival_summary_5B")
    t0 = time.monotonic()
    with (datasets.writer(ctx, "arrival_events_5B", code, canonical_in_caller=True) as w,
          datasets.writer(ctx, "s4_arrival_summary_5B", code) as ws):
        for sid in shards.own_scenarios(ctx, sids, code):
            dom = _own(ctx, "s1_grouping_5B", sid, code).select(KEY)
            cp = A.coarse_plan(dom, plan, derive(ctx, sid))
            # one job of several: this shard's merchants only
            keep_c = shards.merchant_mask(cp.c_mid, ctx.io.shard) if ctx.io.shard is not None else None
            prog = _Progress(ctx, sid, _s3_rows(ctx, sid, code))
            sub = f"scenario_id={sid}"

            def sink(t: pa.Table, batch: dict, sub=sub, prog=prog, cp=cp) -> None:
                w.write(t, subdir=sub)
                ws.write(_summary_table(batch, cp, sschema), subdir=sub)
                prog.arrivals += t.num_rows
            tot, t4 = A.realise_stream(count_chunks(ctx, sid, code, dom, keep_c, prog), cp, plan, grids[sid],
                                       p["arrival_routing_policy_5B"], bt, sink)
            trace.merge(t4)
            by_sid[sid] = t4
            stats[sid] = {k: tot[k] for k in ("arrivals", "virtual", "fallback_arrivals", "batches")}
            ctx.logger.info(f"{code} {sid}: {tot['arrivals']:,} arrivals in {tot['batches']} batches")
    secs = time.monotonic() - t0
    total = sum(s["arrivals"] for s in stats.values())
    rep.count(scenarios=len(stats), arrivals=total)
    rep.data["scenarios"] = stats
    rep.timing("arrivals_written", secs)
    rep.data["arrivals_per_second"] = total / max(secs, 1e-9)
    rep.rng(shards.write_trace(ctx, code, trace, by_sid))
    rep.write(_SEG.report_path(ctx, "S4"))
