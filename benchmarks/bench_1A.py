"""Time every 1A state on a preset and print rows/s.

    python benchmarks/bench_1A.py --preset dev full

A tiny world runs first so numba's compile cache is warm; each preset then builds in a
fresh temporary results directory. Rows are those of the state's main output.
"""
from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

from engine import pipeline
from engine.core import contracts

MAIN = {"S0": "merchant_ids", "S1": "s1_hurdle", "S2": "s2_nb_outlets", "S3": "s3_candidate_set",
        "S4": "s4_ztp_target", "S5": "ccy_country_weights", "S6": "s6_membership", "S7": "s7_allocation",
        "S8": "outlet_catalogue", "S9": "outlet_catalogue"}


def bench(preset: str) -> list[tuple[str, int, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "results"
        ctx = pipeline.prepare(results, pipeline.load_config(preset=preset))
        timings: dict[str, float] = {}
        pipeline.run_segment(ctx, "1A", timings)
        out = []
        for key, secs in timings.items():
            state = key.split(".")[1]
            rows = pq.read_metadata(next(contracts.dataset_path(results, MAIN[state]).glob("*.parquet"))).num_rows
            out.append((key, rows, secs))
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
        print(f"\n1A on preset {preset} ({total:.1f}s wall, incl. reference tables + receipt)")
        print(f"{'state':<8}{'rows':>10}{'seconds':>10}{'rows/s':>12}  output")
        for key, n, secs in rows:
            print(f"{key:<8}{n:>10,}{secs:>10.3f}{n / secs:>12,.0f}  {MAIN[key.split('.')[1]]}")


if __name__ == "__main__":
    main()
