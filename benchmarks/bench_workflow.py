"""Whole-workflow wall time next to the engine's own time, and the per-job start-up cost.

    python benchmarks/bench_workflow.py --preset tiny dev

For each preset: a fresh copy of the workflow builds with `snakemake --cores 2`; the sum of the
states' own times (run_report.json `timings_s.total`) is printed next to the wall time, and
their difference divided by the number of jobs is the per-job overhead (interpreter start,
Snakemake's script wrapper, imports, numba cache loading). A second run of each preset shows
the cost with a warm numba cache. The import cost of one state script is measured alone.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build(preset: str, wd: Path) -> float:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", "--config", f"preset={preset}"],
                       cwd=wd, capture_output=True, text=True)
    if r.returncode:
        sys.exit(r.stderr[-3000:])
    return time.perf_counter() - t0


def state_seconds(results: Path) -> tuple[float, int]:
    reps = list(results.glob("*/S*/run_report.json"))
    return sum(json.loads(p.read_text())["timings_s"]["total"] for p in reps), len(reps)


def import_cost() -> float:
    code = "import time; t=time.perf_counter(); from engine.seg1B import s6_jitter; print(time.perf_counter()-t)"
    return float(subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True).stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", nargs="+", default=["tiny", "dev"], choices=["tiny", "dev", "full"])
    args = ap.parse_args()
    print(f"import of one state module (engine + polars + pyarrow + numba): {import_cost():.2f}s")
    for preset in args.preset:
        for run in ("fresh results", "again, fresh results"):
            with tempfile.TemporaryDirectory() as tmp:
                wd = Path(tmp)
                for f in ("Snakefile",):
                    shutil.copy(ROOT / f, wd)
                for d in ("rules", "scripts", "config", "contracts", "report", "envs", "profiles", "engine"):
                    shutil.copytree(ROOT / d, wd / d, ignore=shutil.ignore_patterns("__pycache__")
                                    if d != "engine" or run.startswith("fresh") else None)
                wall = build(preset, wd)
                eng, jobs = state_seconds(wd / "results")
                print(f"{preset:<5} {run:<22} wall {wall:6.1f}s  states {eng:6.1f}s  jobs {jobs + 2:3d}  "
                      f"overhead/job {(wall - eng) / (jobs + 2):.2f}s")


if __name__ == "__main__":
    main()
