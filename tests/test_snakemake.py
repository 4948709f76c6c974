"""The user path: Snakemake dry-run, a partial build that resumes, config validation."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from engine.core.context import ROOT

SNAKEMAKE = [sys.executable, "-m", "snakemake"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    wd = tmp_path_factory.mktemp("wf")
    shutil.copy(ROOT / "Snakefile", wd)
    for d in ("rules", "scripts", "config", "contracts", "report", "envs", "profiles"):
        shutil.copytree(ROOT / d, wd / d)
    return wd


def smk(wd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*SNAKEMAKE, "--cores", "2", *args, "--config", "preset=tiny"],
                          cwd=wd, capture_output=True, text=True, timeout=600)


def test_dry_run_lists_every_state(workdir):
    r = smk(workdir, "-n", "results/1A/_passed.flag")
    assert r.returncode == 0, r.stderr
    for s in ("reference_tables", "run_receipt", "seg1A_s0_universe", "seg1A_s4_ztp", "seg1A_s9_validation"):
        assert s in r.stdout


def test_partial_build_resumes_and_matches_the_engine(workdir, world_a):
    r = smk(workdir, "results/1A/s4_ztp_target/_manifest.json")
    assert r.returncode == 0, r.stderr
    r = smk(workdir, "-n", "results/1A/_passed.flag")
    assert "seg1A_s9_validation" in r.stdout and "seg1A_s0_universe" not in r.stdout   # only what is left
    r = smk(workdir)                                    # default target: through 1B
    assert r.returncode == 0, r.stderr
    again = smk(workdir)
    assert "Nothing to be done" in again.stdout + again.stderr
    # the Snakemake path and the direct engine path give the same bytes
    for seg, ds in (("1A", "outlet_catalogue"), ("1B", "site_locations")):
        flag = (workdir / f"results/{seg}/_passed.flag").read_text()
        assert flag == (world_a.results / f"{seg}/_passed.flag").read_text()
        a = (workdir / f"results/{seg}/{ds}/part-00000.parquet").read_bytes()
        assert a == (world_a.results / f"{seg}/{ds}/part-00000.parquet").read_bytes()
    assert (workdir / "logs/1A/S2.log").read_text().count("done in") == 1
    assert (workdir / "results/1A/S9/summary.html").read_text().count("PASS") >= 1


def test_bad_config_is_named_before_any_work(workdir, tmp_path):
    r = subprocess.run([*SNAKEMAKE, "-n", "--cores", "1", "--config", "preset=huge"], cwd=workdir,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert "preset" in (r.stdout + r.stderr) and "huge" in (r.stdout + r.stderr)


def test_conda_env_pins_match_pyproject():
    import tomllib

    import yaml
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    env = yaml.safe_load((ROOT / "envs" / "engine.yaml").read_text())["dependencies"]
    pip = next(d["pip"] for d in env if isinstance(d, dict))
    norm = lambda xs: {x.replace(" ", "") for x in xs if not x.startswith("snakemake")}
    assert norm(project) == norm(pip)
