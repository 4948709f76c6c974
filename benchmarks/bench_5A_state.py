"""One 5A state on a real world, in a process of its own: wall and CPU seconds and peak RSS per round.

    python benchmarks/bench_5A_state.py --preset full --build          # build 1A..5A once into --results
    python benchmarks/bench_5A_state.py --preset full --state S4 S5    # re-run states, 3 rounds each

The first round pays numba cache loading; later rounds are the steady state (bench_world.py warms the
cache the same way). S4 removes its output before each round (it must not meet its own bytes). Peak
RSS is the process's (imports and inputs included, and earlier states of the same run): name one state per
process for its own peak.
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import time
from pathlib import Path

from engine import pipeline
from engine.core.context import begin_state


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="full", choices=["tiny", "dev", "full"])
    ap.add_argument("--results", type=Path, default=None, help="default: /tmp/bench5A_<preset>")
    ap.add_argument("--build", action="store_true")
    ap.add_argument("--state", nargs="*", default=[], choices=["S1", "S2", "S3", "S4", "S5"])
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    res = a.results or Path(f"/tmp/bench5A_{a.preset}")
    cfg = pipeline.load_config(preset=a.preset)
    if a.build:
        shutil.rmtree(res, ignore_errors=True)
        ctx = pipeline.prepare(res, cfg)
        for seg in pipeline.STATES:
            pipeline.run_segment(ctx, seg)
    ctx = pipeline.RunContext.load(res / "run_receipt.json", cfg, root=pipeline.ROOT)
    states = dict(pipeline.STATES["5A"])
    for st in a.state:
        for rnd in range(a.rounds):
            if st == "S4":
                shutil.rmtree(res / "5A" / "merchant_zone_scenario_utc", ignore_errors=True)
            t0, c0 = time.perf_counter(), _cpu()
            sctx = ctx.for_state(f"5A.{st}")
            begin_state(sctx)
            states[st](sctx)
            print(json.dumps({"state": st, "round": rnd, "wall_s": round(time.perf_counter() - t0, 3),
                              "cpu_s": round(_cpu() - c0, 3),
                              "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}),
                  flush=True)
    rep = json.loads((res / "5A/S4/run_report.json").read_text())
    print(json.dumps({"utc_rows": rep["counts"]["utc_rows"], "expected_arrivals": rep["expected_arrivals"]}))


if __name__ == "__main__":
    main()
