"""Per-rule resources scale with the world preset (issue 13: profiles/slurm).

A rule's `mem_mb` in rules/*.smk is sized for the `dev` preset; `threads` is what the state can use.
After every rule is defined, the Snakefile calls `apply(workflow, preset)`, which sets each rule's
`mem_mb`, `runtime` (minutes) and `cpus_per_task` for the chosen preset. Cluster executors read
them (sbatch --mem / -t / --cpus-per-task); a local run schedules by them only when the user caps
`--resources mem_mb=...`. Values given with `--set-resources` are left as the user gave them.

Figures: tiny and dev are measured on a 2-core machine (README "Speed"; logs/benchmarks/*.tsv of a
tiny build: the largest job peaks at 1.34 GB RSS, 1B.S9 with mem_mb=4000, and no job runs longer
than 11 s). The `full` row is an ASSUMPTION (10x the merchants and 6x the horizon of dev, no full
build measured on a cluster yet): revise it from `logs/benchmarks/` of a full build.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scale:
    mem: float          # multiplier on the rule's mem_mb (sized for dev)
    runtime_min: int    # wall-time limit per job, minutes
    cpus: int           # multiplier on the rule's threads -> cpus_per_task


PRESETS: dict[str, Scale] = {
    "tiny": Scale(mem=0.5, runtime_min=10, cpus=1),
    "dev": Scale(mem=1.0, runtime_min=30, cpus=1),
    "full": Scale(mem=4.0, runtime_min=240, cpus=2),   # ASSUMPTION (see above)
}
# Interpreter + polars + pyarrow + numba + reference tables: no job needs less (tiny: 0.36-1.34 GB RSS).
FLOOR_MB = 1000


def scaled(preset: str, mem_mb: int, threads: int = 1) -> dict[str, int]:
    """The resources of a rule with `mem_mb` (dev-sized) and `threads` under `preset`."""
    s = PRESETS.get(preset, PRESETS["dev"])
    return {"mem_mb": max(FLOOR_MB, int(round(mem_mb * s.mem))),
            "runtime": s.runtime_min,
            "cpus_per_task": max(1, threads * s.cpus)}


def apply(workflow, preset: str) -> int:
    """Set every rule's mem_mb/runtime/cpus_per_task for `preset`; returns the number of rules scaled.
    Rules without a mem_mb (the `all` target, localrules) keep the executor's defaults."""
    overridden = getattr(workflow.resource_settings, "_parsed_overwrite_resources", None) or {}
    n = 0
    for rule in workflow.rules:
        mem = rule.resources.get("mem_mb").value if "mem_mb" in rule.resources else None
        threads = rule.resources.get("_cores").value if "_cores" in rule.resources else 1
        if not isinstance(mem, int) or not isinstance(threads, int):
            continue    # a callable (evaluated per job) or no memory declared: left alone
        user = overridden.get(rule.name, {})
        for key, value in scaled(preset, mem, threads).items():
            if key not in user:
                rule.resources[key] = value
        n += 1
    return n
