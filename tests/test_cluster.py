"""The tiny world through a real SLURM cluster (profiles/slurm) equals a local build, byte for byte.

One single-node cluster (tests/cluster/slurm.sh) runs the Snakefile's default target with the
shipped profile in a copy of the repository; a job is killed with scancel mid-way, Snakemake fails,
the same command is rerun and completes. Every file under results/ (run_report.json aside: it holds
wall-clock timings) then equals a local `snakemake --cores 2` build in another copy, and still does
after everything from 5A.S4 on is rerun on SLURM with shard jobs (`shards=2`). Finally a state
made to fail shows its engine error line in the Snakemake log and in its SLURM log.

Marked `cluster` (minutes; `pytest -m cluster`); skipped where SLURM cannot be brought up or the
executor plugin is missing (`pip install -e '.[cluster]'`).
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.core.context import ROOT

pytestmark = pytest.mark.cluster

SCRIPT = ROOT / "tests" / "cluster" / "slurm.sh"
# What a clone needs to build (engine/ with its __pycache__: numba's compile cache travels along).
REPO = ("Snakefile", "rules", "scripts", "config", "contracts", "report", "envs", "profiles", "engine")
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
TINY = ["--config", "preset=tiny"]
SLURM = [*SNAKEMAKE, "--profile", "profiles/slurm", *TINY]
BUILD_TIMEOUT_S = 3600


@pytest.fixture(scope="module")
def slurm():
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        pytest.skip("snakemake-executor-plugin-slurm not installed: pip install -e '.[cluster]'")
    was_up = subprocess.run(["bash", SCRIPT, "status"], capture_output=True).returncode == 0
    r = subprocess.run(["bash", SCRIPT, "up"], capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        pytest.skip(f"SLURM cannot be brought up here: {(r.stderr or r.stdout).strip()[-300:]}")
    yield
    if not was_up:
        subprocess.run(["bash", SCRIPT, "down"], capture_output=True, timeout=120)


def clone(dst: Path) -> Path:
    dst.mkdir(parents=True)
    for item in REPO:
        src = ROOT / item
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dst / item)
    return dst


def run(cmd: list[str], wd: Path, log: Path) -> tuple[int, str]:
    with open(log, "w") as out:
        rc = subprocess.run(cmd, cwd=wd, stdout=out, stderr=subprocess.STDOUT, timeout=BUILD_TIMEOUT_S).returncode
    return rc, log.read_text()


def results_files(wd: Path) -> dict[str, Path]:
    base = wd / "results"
    return {p.relative_to(base).as_posix(): p for p in sorted(base.rglob("*"))
            if p.is_file() and p.name != "run_report.json"}


def run_id(text: str) -> str:
    return next(line.split("SLURM run ID:")[1].strip() for line in text.splitlines() if "SLURM run ID:" in line)


def jobs_of(run: str) -> list[tuple[str, str, str, str, str, str]]:
    """(jobid, rule comment, state, min memory, time limit, cpus) of every job of a run (MinJobAge keeps them)."""
    out = subprocess.run(["squeue", "-h", "--states=all", "--name", run, "-o", "%i|%k|%T|%m|%l|%C"],
                         capture_output=True, text=True, check=True).stdout
    return [tuple(line.split("|")) for line in out.splitlines() if line.strip()]


def kill_one_late_job(proc: subprocess.Popen, log: Path, prefix: str = "rule_seg1B_") -> str:
    """Wait until a job of a later rule runs, scancel it; return its rule."""
    deadline = time.monotonic() + BUILD_TIMEOUT_S
    while time.monotonic() < deadline and proc.poll() is None:
        text = log.read_text()
        if "SLURM run ID:" in text:
            for jobid, rule, state, *_ in jobs_of(run_id(text)):
                if rule.startswith(prefix) and state == "RUNNING":
                    subprocess.run(["scancel", jobid], check=True)
                    return rule
        time.sleep(1)
    pytest.fail(f"no {prefix}* job ran:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def worlds(slurm, tmp_path_factory):
    """(local clone, slurm clone, figures): local build; slurm build killed mid-way and resumed."""
    base = tmp_path_factory.mktemp("cluster")
    local, onslurm = clone(base / "local"), clone(base / "slurm")
    t0 = time.monotonic()
    rc, text = run([*SNAKEMAKE, "--cores", "2", *TINY], local, base / "local.log")
    assert rc == 0, text[-3000:]
    figures = {"local_s": time.monotonic() - t0}

    t0 = time.monotonic()
    log1 = base / "slurm1.log"
    with open(log1, "w") as out:
        proc = subprocess.Popen(SLURM, cwd=onslurm, stdout=out, stderr=subprocess.STDOUT)
        try:
            killed = kill_one_late_job(proc, log1)
            rc = proc.wait(timeout=BUILD_TIMEOUT_S)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                proc.wait(timeout=120)
    first = log1.read_text()
    assert rc != 0, first[-3000:]
    assert "CANCELLED" in first, first[-3000:]
    rc, second = run(SLURM, onslurm, base / "slurm2.log")
    assert rc == 0, second[-3000:]
    figures["slurm_s"] = time.monotonic() - t0
    figures["jobs"] = sum(t.count("has been submitted with SLURM jobid") for t in (first, second))
    figures.update(killed=killed, first=first, second=second)
    print(f"\ntiny world: local {figures['local_s']:.0f} s; slurm {figures['slurm_s']:.0f} s "
          f"with {figures['jobs']} SLURM jobs (one scancel'd: {killed})")
    return local, onslurm, figures


def test_resumed_slurm_build_equals_local_build(worlds):
    local, onslurm, fig = worlds
    a, b = results_files(local), results_files(onslurm)
    assert sorted(a) == sorted(b)
    flags = [k for k in a if k.endswith("_passed.flag")]
    assert len(flags) >= 5                              # every segment of the default target
    differ = [k for k in a if a[k].read_bytes() != b[k].read_bytes()]
    assert not differ, f"{len(differ)} files differ, e.g. {differ[:5]}"
    # the rerun resubmitted the killed rule and nothing that had finished before it
    killed = fig["killed"].removeprefix("rule_")
    assert f"rule {killed}:" in fig["second"]
    assert "rule reference_tables:" not in fig["second"]
    rc, text = run(SLURM, onslurm, onslurm / "again.log")
    assert rc == 0 and "Nothing to be done" in text, text[-2000:]


def test_jobs_get_the_presets_resources_and_keep_their_logs(worlds):
    from engine.core.resources import scaled
    _, onslurm, fig = worlds
    jobs = jobs_of(run_id(fig["second"]))
    assert jobs and all(state == "COMPLETED" for _, _, state, *_ in jobs)
    want = scaled("tiny", 4000)                          # e.g. seg1B_s9_validation: mem_mb=4000 in rules/1B.smk
    mem = {rule: m for _, rule, _, m, _, _ in jobs}
    assert mem["rule_seg1B_s9_validation"] == f"{want['mem_mb']}M"
    assert all(limit == f"{want['runtime']}:00" for *_, limit, _ in jobs)
    # one SLURM log per job under logs/slurm/rule_<rule>/<jobid>.log
    logs = {p.parent.name for p in (onslurm / "logs" / "slurm").rglob("*.log")}
    assert {rule for _, rule, *_ in jobs} <= logs


def test_sharded_slurm_rebuild_equals_local_build(worlds):
    """`--config shards=2` on SLURM from 5A.S4 on: 5A.S4, 5B.S3, 5B.S4 and 5B.S5 rerun as 2 shard jobs each
    (wildcards scenario, k, n through sbatch) and a merge; every published file still equals the local
    one-job build."""
    local, onslurm, _ = worlds
    t0 = time.monotonic()
    rc, text = run([*SLURM, "shards=2", "--forcerun", "seg5A_s4_merge"], onslurm, onslurm / "sharded.log")
    assert rc == 0, text[-3000:]
    for rule in ("seg5A_s4", "seg5B_s3", "seg5B_s4", "seg5B_s5"):
        assert text.count(f"rule {rule}_shard:") == 2 and f"rule {rule}_merge:" in text, rule
    a = results_files(local)
    b = {k: p for k, p in results_files(onslurm).items() if "/_shards/" not in k}
    assert sorted(a) == sorted(b)
    assert [k for k in a if a[k].read_bytes() != b[k].read_bytes()] == []
    jobs = text.count("has been submitted with SLURM jobid")
    print(f"\nsharded rerun from 5A.S4 on slurm: {time.monotonic() - t0:.0f} s, {jobs} SLURM jobs")


def test_failed_state_reports_its_engine_error_line(worlds):
    _, onslurm, _ = worlds
    # A state that fails the way every state fails: EngineFailure -> one line in its log, exit 1.
    (onslurm / "scripts" / "5A" / "s5_validation.py").write_text(
        "from engine.core.context import run_script\n"
        "from engine.core.errors import EngineFailure\n\n\n"
        "def fail(smk, log):\n"
        "    raise EngineFailure('5A.S5.INJECTED_FAILURE', 'made to fail by the cluster test', {'file': 'none'})\n\n\n"
        "run_script(snakemake, fail)  # noqa: F821\n")
    rc, text = run([*SLURM, "--forcerun", "seg5A_s5_validation"], onslurm, onslurm / "fail.log")
    assert rc != 0
    line = "5A.S5.INJECTED_FAILURE: made to fail by the cluster test [file=none]"
    assert line in text, text[-3000:]
    assert line in (onslurm / "logs" / "5A" / "S5.log").read_text()
    slurm_logs = list((onslurm / "logs" / "slurm" / "rule_seg5A_s5_validation").glob("*.log"))
    assert any(line in p.read_text() for p in slurm_logs)
    assert "rule_seg5A_s5_validation" in text and "FAILED" in text


def test_cluster_script_is_idempotent(slurm):
    t0 = time.monotonic()
    r = subprocess.run(["bash", SCRIPT, "up"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("up: node"), r.stderr
    assert time.monotonic() - t0 < 10
    assert subprocess.run(["bash", SCRIPT, "status"], capture_output=True).returncode == 0
    assert os.access(SCRIPT, os.X_OK)
