"""5B benchmark: arrivals/s of the S4 kernel and of S4 + write, next to the pyarrow floor.

    python benchmarks/bench_5B.py --preset dev     # ~1e7 arrivals, also times S1-S3 on the chain
    python benchmarks/bench_5B.py --preset full    # ~1e8 arrivals (S4 only; S3 rows drawn here)

Floor = the time pyarrow needs to write the same tables (same columns, zstd level 3, 1M-row row
groups) with a plain ParquetWriter from ready in-memory arrays. "S4+write" streams every batch
through engine.core.publish.DatasetWriter (which also re-encodes dictionaries per row group).
Inputs are synthetic (engine/seg5B/synth.py); S3 rows for `full` are Poisson(λ) from numpy, as the
S4 input only needs counts.
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from engine.core.publish import ROW_GROUP_ROWS, WRITE_OPTIONS, DatasetWriter
from engine.seg5B import arrivals as A
from engine.seg5B import chain, synth
from engine.seg5B import logic as L
from engine.seg5B.policies import load_policies

PRESETS = {"dev": dict(merchants=2000, days=14, arrivals=1.0e7),
           "full": dict(merchants=20000, days=90, arrivals=1.0e8)}


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", choices=list(PRESETS), default="dev")
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--out", default=None, help="directory for the written dataset (default: a temp dir)")
    a = ap.parse_args()
    p = PRESETS[a.preset]
    pol = load_policies("config/5B")
    bt = a.batch or pol["arrival_time_placement_policy_5B"]["batch_target_arrivals"]
    span = ("2026-03-01", "2026-06-01") if p["days"] > 30 else ("2026-03-01", "2026-04-05")
    t0 = time.perf_counter()
    # the full world's λ table is big; S4 needs only the domain, so build λ for one bucket there
    w = synth.make_world(p["merchants"], p["days"] if a.preset == "dev" else 1, p["arrivals"], cache_span=span)
    fig = {"preset": a.preset, "world_build_s": round(time.perf_counter() - t0, 2)}
    plan = A.build_routing_plan(w.site_weights, w.alias_table, w.classification, w.settlement, w.edges, w.cache)
    derive = L.stream_deriver("f" * 64, "p" * 64, 1, "baseline_v1")
    tmp = Path(a.out or tempfile.mkdtemp(prefix="bench5B_"))
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if a.preset == "dev":
        t = time.perf_counter()
        out = chain.run_scenario(w.lam, w.profile, w.classification, w.scenario, pol, plan, derive,
                                 lambda tb: None, bt)
        fig["chain_s1_to_s4_no_write_s"] = round(time.perf_counter() - t, 2)
        nz = np.flatnonzero(out.count > 0)
        row_c, row_b, row_n, row_lam, cp, g = (out.row_c[nz], out.row_b[nz], out.count[nz], out.lam_realised[nz],
                                               out.cp, out.g)
        fig["lambda_rows"] = int(len(out.count))
    else:
        dom, _ = L.domain_keys(w.lam)
        cp = A.coarse_plan(dom, plan, derive)
        H = p["days"] * 24
        g = L.Grid(int(w.scenario["horizon_start_utc"].timestamp()) * 1_000_000, 3_600_000_000, H)
        rs = np.random.default_rng(1)
        scale = rs.pareto(2.5, len(cp.c_mid)) + 0.2
        wave = 1.0 + 0.8 * np.sin(np.arange(H) * 2 * np.pi / 24.0)
        mu = (scale[:, None] * (p["arrivals"] / scale.sum() / wave.sum())) * wave[None, :]
        n = rs.poisson(mu).astype(np.int32).reshape(-1)
        nz = np.flatnonzero(n > 0)
        row_c, row_b = (nz // H).astype(np.int32), (nz % H).astype(np.int32)
        row_n, row_lam = n[nz], mu.reshape(-1)[nz]
        del n, mu, nz
        fig["lambda_rows"] = int(len(cp.c_mid) * H)
    fig["s4_rows"] = int(len(row_c))
    fig["arrivals"] = int(row_n.sum())
    rp = pol["arrival_routing_policy_5B"]
    # warm-up: JIT (or cache load) of every kernel on the first merchant, outside the timings
    w0 = int(np.searchsorted(cp.c_m[row_c], cp.c_m[row_c[0]], side="right"))
    A.realise_arrivals(row_c[:w0], row_b[:w0], row_n[:w0], row_lam[:w0], cp, plan, g, pol["arrival_routing_policy_5B"],
                       bt, lambda tb: None)
    # 1. kernel only (expansion into arrays, no Arrow)
    t = time.perf_counter()
    cuts = A.merchant_batches(row_c.astype(np.int64), row_n.astype(np.int64), cp.c_m, bt)
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        A.expand_batch(row_c[lo:hi], row_b[lo:hi], row_n[lo:hi], row_lam[lo:hi], cp, plan, g,
                       rp["p_virtual_hybrid"])
    k = time.perf_counter() - t
    fig.update(kernel_s=round(k, 2), kernel_arrivals_per_s=round(fig["arrivals"] / k))
    # 2. S4 + DatasetWriter (wall clock of the whole streaming call, close and seal included)
    schema = A.arrow_schema("arrival_events_5B")
    t = time.perf_counter()
    with DatasetWriter(tmp / "arrival_events", schema, "arrival_events_5B", None, "5B.S4") as dw:
        A.realise_arrivals(row_c, row_b, row_n, row_lam, cp, plan, g, rp, bt,
                           lambda tb: dw.write(tb, subdir="scenario_id=baseline_v1"))
    s4 = time.perf_counter() - t
    # 3. the floor: a plain ParquetWriter on the same tables; only its write calls are timed
    floor = [0.0]
    fdir = tmp / "floor"
    fdir.mkdir()
    fw = pq.ParquetWriter(fdir / "part-00000.parquet", schema, **WRITE_OPTIONS)

    def floor_sink(tb):
        s = time.perf_counter()
        fw.write_table(tb, row_group_size=ROW_GROUP_ROWS)
        floor[0] += time.perf_counter() - s
    A.realise_arrivals(row_c, row_b, row_n, row_lam, cp, plan, g, rp, bt, floor_sink)
    s = time.perf_counter()
    fw.close()
    floor[0] += time.perf_counter() - s
    fig.update(s4_write_s=round(s4, 2), s4_write_arrivals_per_s=round(fig["arrivals"] / s4),
               floor_pyarrow_write_s=round(floor[0], 2), s4_over_floor=round(s4 / floor[0], 2),
               dataset_bytes=sum(f.stat().st_size for f in (tmp / "arrival_events").rglob("*.parquet")),
               peak_rss_mb=round(rss_mb()))
    print(json.dumps(fig, indent=1))
    if a.out is None:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
