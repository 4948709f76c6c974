"""Time every state of the built segments on a preset and print rows/s.

    python benchmarks/bench_world.py --preset dev full

A tiny world runs first so numba's compile cache is warm; each preset then builds in a
fresh temporary results directory. Rows are those of the state's main output.
"""
from __future__ import annotations

import argparse
import logging
import resource
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

from engine import pipeline
from engine.core import contracts

MAIN = {
    "1A": {"S0": "merchant_ids", "S1": "s1_hurdle", "S2": "s2_nb_outlets", "S3": "s3_candidate_set",
           "S4": "s4_ztp_target", "S5": "ccy_country_weights", "S6": "s6_membership", "S7": "s7_allocation",
           "S8": "outlet_catalogue", "S9": "outlet_catalogue"},
    "1B": {"S0": "outlet_catalogue", "S1": "tile_index", "S2": "tile_weights", "S3": "s3_requirements",
           "S4": "s4_alloc_plan", "S5": "s5_site_tile_assignment", "S6": "s6_site_jitter",
           "S7": "s7_site_synthesis", "S8": "site_locations", "S9": "site_locations"},
    "2A": {"S0": "site_locations", "S1": "s1_tz_lookup", "S2": "site_timezones", "S3": "tz_timetable_cache",
           "S4": "site_timezones", "S5": "site_timezones"},
    "2B": {"S0": "site_timezones", "S1": "s1_site_weights", "S2": "s2_alias_table", "S3": "s3_day_effects",
           "S4": "s4_group_weights", "S5": "s5_route_audit", "S7": "s4_group_weights"},
    "3A": {"S0": "outlet_catalogue", "S1": "s1_escalation_queue", "S2": "s2_country_zone_priors",
           "S3": "s3_zone_shares", "S4": "s4_zone_counts", "S5": "zone_alloc", "S6": "zone_alloc"},
    "3B": {"S0": "merchant_ids", "S1": "virtual_classification_3B", "S2": "edge_catalogue_3B",
           "S3": "edge_catalogue_3B", "S4": "edge_catalogue_3B"},
    "5A": {"S0": "merchant_ids", "S1": "merchant_zone_profile_5A", "S2": "class_zone_shape_5A",
           "S3": "merchant_zone_baseline_local_5A", "S4": "merchant_zone_scenario_utc_5A",
           "S5": "merchant_zone_scenario_utc_5A"},
}
SEGMENTS = tuple(MAIN)


def bench(preset: str) -> list[tuple[str, int, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "results"
        ctx = pipeline.prepare(results, pipeline.load_config(preset=preset))
        timings: dict[str, float] = {}
        peak: dict[str, float] = {}                     # process peak RSS (MB) after each segment
        for seg in SEGMENTS:
            pipeline.run_segment(ctx, seg, timings)
            peak[seg] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        out = []
        for key, secs in timings.items():
            ds = MAIN[key.split(".")[0]][key.split(".")[1]]
            rows = sum(pq.read_metadata(f).num_rows for f in contracts.dataset_path(results, ds).rglob("*.parquet"))
            out.append((key, rows, secs, peak[key.split(".")[0]]))
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", nargs="+", default=["dev", "full"], choices=["tiny", "dev", "full"])
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    bench("tiny")                                           # warm the numba cache
    for preset in args.preset:
        t0 = time.perf_counter()
        rows = bench(preset)
        total = time.perf_counter() - t0
        print(f"\n{'+'.join(SEGMENTS)} on preset {preset} ({total:.1f}s wall, incl. reference tables + receipt)")
        print(f"{'state':<8}{'rows':>12}{'seconds':>10}{'rows/s':>12}{'peak MB':>9}  output")
        for key, n, secs, mb in rows:
            print(f"{key:<8}{n:>12,}{secs:>10.3f}{n / secs:>12,.0f}{mb:>9,.0f}  "
                  f"{MAIN[key.split('.')[0]][key.split('.')[1]]}")
        print("peak MB: the process's peak RSS at the end of the state's segment (runs share one process)")


if __name__ == "__main__":
    main()
