"""Benchmark 5A logic on synthetic dev- and full-sized inputs: rows/s per state and peak RSS.

    python benchmarks/bench_5A.py --preset dev full [--out /tmp/bench5A] [--chunk-rows 2000]

S4 (projection + Parquet write through engine.core.publish.DatasetWriter) is the hot one: target
>= 20M rows/s on full with peak RSS <= 4 GB (issue 11). The upstream is `engine.seg5A.synthetic` at the
preset's merchant count; the horizon is config.yaml's (world.horizon_start_utc, presets.<p>).
S5 needs a real world: `benchmarks/bench_world.py --preset dev full` times every state (and S5) on one.

(A proposed `canonical_fast` dictionary re-encoding lived here; it was measured at 12-13 ms per 1M-row
row group against 4-12 ms for the core's numba renumbering with its no-null fast path, same output, and
was dropped.)
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.core.civil_time import flatten_cache  # noqa: E402
from engine.core.publish import DatasetWriter  # noqa: E402
from engine.core.tzcache import build_tz_cache  # noqa: E402
from engine.seg5A import baseline, calendar, classify, horizon, overlay, project, shapes  # noqa: E402
from engine.seg5A.common import load_policies  # noqa: E402
from engine.seg5A.scale import expected_arrivals  # noqa: E402
from engine.seg5A.synthetic import synthetic_upstream  # noqa: E402


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def bench(preset: str, out: Path, chunk_rows: int, scenario_id: str = "baseline_v1", prefetch: bool = False) -> dict:
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    P = load_policies()
    ph = "0" * 64
    spec = cfg["presets"][preset]
    res: dict = {"preset": preset, "merchants": spec["merchants"]}
    t = time.perf_counter()
    up = synthetic_upstream(int(spec["merchants"]))
    zones = classify.merchant_zones(up["zone_alloc"], up["site_timezones"])
    prof = classify.classify(zones, up["merchant_ids"], up["virtual_classification_3B"],
                             P["merchant_class_policy_5A"], P["demand_scale_policy_5A"], ph)
    res["S1_s"] = time.perf_counter() - t
    res["S1_rows"] = prof.height
    t = time.perf_counter()
    keys, S = shapes.build_shapes(prof, P["shape_library_5A"], P["zone_shape_modifiers_5A"], ph)
    res["S2_s"], res["S2_rows"] = time.perf_counter() - t, keys.height * 168
    t = time.perf_counter()
    base, w_eff, _ = baseline.baseline(prof, keys, S, P["demand_scale_policy_5A"], P["baseline_intensity_policy_5A"])
    res["S3_s"], res["S3_rows"] = time.perf_counter() - t, base.size
    hz = horizon.horizon_from_config(cfg, preset)
    tzids = sorted(set(prof["zone_representation"].to_list()), key=str.encode)
    t = time.perf_counter()
    tbl, _ = build_tz_cache(tzids, hz.start_us // 1_000_000 - 86400 * 2, hz.end_us // 1_000_000 + 86400 * 2)
    grid = horizon.build_local_grid(tzids, flatten_cache(tbl), hz)
    scen = next(s for s in P["scenario_horizon_config_5A"]["scenarios"] if s["scenario_id"] == scenario_id)
    cal = calendar.generate_calendar(scen, hz, sorted(set(prof["legal_country_iso"].to_list())), tzids,
                                     P["scenario_calendar_generator_5A"])
    calendar.validate_calendar(cal, P["scenario_overlay_policy_5A"], hz)
    sig = overlay.signatures(prof, grid, cal)
    F, _ = overlay.overlay_factors(cal, sig, grid, P["scenario_overlay_policy_5A"], P["overlay_ordering_policy_5A"])
    res["S4_prepare_s"] = time.perf_counter() - t
    res["events"], res["signatures"], res["H"] = cal.height, sig.table.height, hz.n_buckets
    # warm the kernel (compile or load the numba cache) outside the timing
    for _ in project.utc_chunks(prof.head(1), base[:1], grid, overlay.Signatures(sig.table, sig.row_sig[:1],
                                                                                  sig.row_tz[:1]), F):
        pass
    st = project.StreamStats()
    target = out / preset / "merchant_zone_scenario_utc"
    shutil.rmtree(target, ignore_errors=True)
    t = time.perf_counter()
    with DatasetWriter(target, project.UTC_SCHEMA, "merchant_zone_scenario_utc_5A", None, "5A.S4",
                       column_encoding={"utc_horizon_bucket_index": "DELTA_BINARY_PACKED"}) as w:
        chunks = project.utc_chunks(prof, base, grid, sig, F, chunk_rows=chunk_rows, stats=st)
        for tb in (project.prefetched(chunks) if prefetch else chunks):
            w.write(tb, subdir=f"scenario_id={scenario_id}")
    dt_ = time.perf_counter() - t
    # projection alone (no write), for the split
    t = time.perf_counter()
    for _ in project.utc_chunks(prof, base, grid, sig, F, chunk_rows=chunk_rows):
        pass
    res["S4_project_only_s"] = time.perf_counter() - t
    res.update(S4_rows=st.rows, S4_s=dt_, S4_rows_per_s=st.rows / dt_, S4_chunks=st.chunks,
               S4_bytes=sum(p.stat().st_size for p in target.rglob("*.parquet")),
               expected_arrivals_baseline=expected_arrivals(w_eff, hz.days), lambda_utc_total=st.total,
               peak_rss_mb=peak_rss_mb())
    shutil.rmtree(target, ignore_errors=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", nargs="+", default=["dev", "full"])
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--chunk-rows", type=int, default=500)
    ap.add_argument("--prefetch", action="store_true",
                    help="compose the next block in a background thread (helps only with a free core)")
    a = ap.parse_args()
    out = a.out or Path(tempfile.mkdtemp(prefix="bench5A_"))
    for p in a.preset:
        print(json.dumps(bench(p, out, a.chunk_rows, prefetch=a.prefetch), indent=1), flush=True)


if __name__ == "__main__":
    main()
