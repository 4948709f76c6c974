"""Benchmark segment 5B on a real world: wall time and peak RSS of every state, arrivals/s of S4,
next to the pyarrow floor.

    python benchmarks/bench_5B_world.py --preset dev  [--world /tmp/w_dev]
    python benchmarks/bench_5B_world.py --preset full [--world /tmp/w_full]

The world is built through 5A once into --world (reused when its 5A flag is there). Each 5B state
then runs in its own process (so each peak RSS is that state's own). Floor = the time a plain
pyarrow ParquetWriter needs to write S4's arrival columns from ready in-memory arrays, with the
engine's compression and row-group size (measured on up to --floor-rows rows, rate scaled).
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STATES = ("S0", "S1", "S2", "S3", "S4", "S5")
UPSTREAM = ("1A", "1B", "2A", "2B", "3A", "3B", "5A")

_RUN = """
import resource, sys, time, json
from pathlib import Path
from engine import pipeline
from engine.core.context import RunContext, begin_state
cfg = pipeline.load_config(preset=sys.argv[2])
results = Path(sys.argv[1])
{body}
print("BENCH " + json.dumps({{"rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "secs": secs}}))
"""
_BUILD = """
ctx = pipeline.prepare(results, cfg)
t0 = time.perf_counter()
for seg in sys.argv[3].split(","):
    pipeline.run_segment(ctx, seg)
secs = time.perf_counter() - t0
"""
_STATE = """
ctx = RunContext.load(results / "run_receipt.json", cfg)
name = sys.argv[3]
fn = dict(pipeline.STATES["5B"])[name]
sctx = ctx.for_state("5B." + name)
begin_state(sctx)
t0 = time.perf_counter()
fn(sctx)
secs = time.perf_counter() - t0
"""


def _sub(body: str, *args: str) -> dict:
    r = subprocess.run([sys.executable, "-c", _RUN.format(body=body), *args], cwd=ROOT, capture_output=True,
                       text=True)
    if r.returncode:
        sys.exit(r.stderr[-3000:])
    line = [x for x in r.stdout.splitlines() if x.startswith("BENCH ")][-1]
    return json.loads(line[6:])


def floor(results: Path, max_rows: int) -> tuple[int, float]:
    """(rows, seconds) for pyarrow to write up to `max_rows` arrival rows from memory."""
    import tempfile

    import pyarrow as pa
    import pyarrow.parquet as pq

    from engine.core.datasets import column_encoding
    from engine.core.publish import ROW_GROUP_ROWS, write_options
    files = sorted((results / "5B/arrival_events").rglob("*.parquet"))
    tabs, n = [], 0
    for f in files:
        pf = pq.ParquetFile(f)
        for rg in range(pf.num_row_groups):
            if n >= max_rows:
                break
            t = pf.read_row_group(rg)
            tabs.append(t)
            n += t.num_rows
    table = pa.concat_tables(tabs).combine_chunks()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        opts = write_options(table.schema, column_encoding("arrival_events_5B"))
        with pq.ParquetWriter(Path(tmp) / "floor.parquet", table.schema, **opts) as w:
            for a in range(0, table.num_rows, ROW_GROUP_ROWS):
                w.write_table(table.slice(a, ROW_GROUP_ROWS), row_group_size=ROW_GROUP_ROWS)
        return table.num_rows, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="dev", choices=["tiny", "dev", "full"])
    ap.add_argument("--world", type=Path, default=None, help="results dir to build into / reuse")
    ap.add_argument("--floor-rows", type=int, default=20_000_000)
    a = ap.parse_args()
    results = (a.world or Path(f"/tmp/bench5B_{a.preset}")) / "results"
    if not (results / "5A/_passed.flag").exists():
        b = _sub(_BUILD, str(results), a.preset, ",".join(UPSTREAM))
        print(f"built {a.preset} through 5A in {b['secs']:.1f} s")
    shutil.rmtree(results / "5B", ignore_errors=True)          # outputs are write-once: start 5B clean
    rows = []
    for st in STATES:
        r = _sub(_STATE, str(results), a.preset, st)
        rows.append((st, r["secs"], r["rss_mb"]))
        print(f"5B.{st}: {r['secs']:7.2f} s  peak RSS {r['rss_mb']:7.0f} MB", flush=True)
    s4 = json.loads((results / "5B/S4/run_report.json").read_text())
    arrivals = s4["counts"]["arrivals"]
    s4_secs = dict((s, t) for s, t, _ in rows)["S4"]
    fr, fs = floor(results, a.floor_rows)
    floor_secs = fs * arrivals / max(fr, 1)
    total = sum(t for _, t, _ in rows)
    print(json.dumps({
        "preset": a.preset, "arrivals": arrivals, "segment_secs": round(total, 2),
        "states": {s: {"secs": round(t, 2), "peak_rss_mb": round(m)} for s, t, m in rows},
        "s4_arrivals_per_s": round(arrivals / s4_secs), "s4_write_loop_arrivals_per_s": round(s4["arrivals_per_second"]),
        "floor_secs": round(floor_secs, 2), "floor_rows_measured": fr, "s4_over_floor": round(s4_secs / floor_secs, 2),
        "s5_over_s4": round(dict((s, t) for s, t, _ in rows)["S5"] / s4_secs, 2),
        "peak_rss_mb": round(max(m for _, _, m in rows))}, indent=1))


if __name__ == "__main__":
    main()
