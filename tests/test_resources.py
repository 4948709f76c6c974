"""Per-rule resources scale with the preset (engine/core/resources.py), as the executors see them."""
from __future__ import annotations

import re
import subprocess
import sys

from hypothesis import given
from hypothesis import strategies as st

from engine.core.context import ROOT
from engine.core.resources import FLOOR_MB, PRESETS, scaled


@given(mem=st.integers(1, 10**6), threads=st.integers(1, 64))
def test_resources_grow_with_the_preset(mem, threads):
    tiny, dev, full = (scaled(p, mem, threads) for p in ("tiny", "dev", "full"))
    for key in ("mem_mb", "runtime", "cpus_per_task"):
        assert tiny[key] <= dev[key] <= full[key]
    assert tiny["mem_mb"] >= FLOOR_MB and tiny["cpus_per_task"] >= threads
    assert dev == {"mem_mb": max(FLOOR_MB, mem), "runtime": PRESETS["dev"].runtime_min, "cpus_per_task": threads}


def test_unknown_preset_gets_dev_sizes():
    assert scaled("custom", 3000) == scaled("dev", 3000)


def jobs_resources(*args: str) -> dict[str, str]:
    """rule -> its `resources:` line in a dry run of every job through 1B."""
    out = subprocess.run([sys.executable, "-m", "snakemake", "results/1B/_passed.flag", "-n", "--forceall",
                          "--cores", "1", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    rules = re.findall(r"^rule (\w+):\n(?:    .*\n)*?    resources: (.*)$", out.stdout, flags=re.M)
    return dict(rules)


def test_dry_run_jobs_carry_the_presets_resources_and_set_resources_wins():
    full = jobs_resources("--config", "preset=full", "--set-resources", "seg1B_s9_validation:mem_mb=12345")
    tiny = jobs_resources("--config", "preset=tiny")
    # seg1B_s8_egress: mem_mb=2000 in rules/1B.smk
    assert "mem_mb=8000" in full["seg1B_s8_egress"] and "mem_mb=1000" in tiny["seg1B_s8_egress"]
    assert "runtime=240" in full["seg1B_s8_egress"] and "cpus_per_task=2" in full["seg1B_s8_egress"]
    assert "runtime=10" in tiny["seg1B_s8_egress"] and "cpus_per_task=1" in tiny["seg1B_s8_egress"]
    assert "mem_mb=12345" in full["seg1B_s9_validation"]          # the user's value, not scaled
