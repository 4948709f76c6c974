"""profiles/kubernetes as shipped: the dry run plans every state up to 5B.S5 with files used in place.

The kubernetes executor sends every declared file through the default storage provider; the
profile roots the fs provider at the working directory (a volume every pod mounts at that path) and
engine/core/shared_volume.py hands jobs their inputs and outputs in place there (a dataset's parts
are not declared). Logs and benchmarks are copied back from the pod. The dry run needs the plugins
(`pip install -e '.[cluster]'`), not a cluster. tests/kubernetes/fake_cluster.py runs pods against
a stand-in for the Kubernetes API: `pytest -m cluster` builds 1A that way, byte for byte.
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from engine.core import shared_volume, stateio
from engine.core.context import ROOT, state_id_of

SNAKEMAKE = [sys.executable, "-m", "snakemake"]
PLUGINS = ("snakemake_executor_plugin_kubernetes", "snakemake_storage_plugin_fs")
MISSING = [p for p in PLUGINS if importlib.util.find_spec(p) is None]
needs_plugins = pytest.mark.skipif(bool(MISSING), reason=f"{', '.join(MISSING)} not installed: pip install -e '.[cluster]'")


def copy_repo(wd: Path, with_engine: bool = False) -> Path:
    wd.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "Snakefile", wd)
    for d in ("rules", "scripts", "config", "contracts", "report", "envs", "profiles") + (("engine",) if with_engine else ()):
        shutil.copytree(ROOT / d, wd / d, ignore=shutil.ignore_patterns("__pycache__"))
    return wd


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    wd = copy_repo(tmp_path_factory.mktemp("k8s").resolve())      # the profile roots the storage at os.getcwd()
    r = subprocess.run([*SNAKEMAKE, "--dry-run", "--profile", "profiles/kubernetes", "--config", "preset=tiny"],
                       cwd=wd, capture_output=True, text=True, timeout=600)
    return wd, r


@needs_plugins
def test_dry_run_plans_every_state_to_5B(dry_run):
    wd, r = dry_run
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    rules = set(re.findall(r"^rule (\w+):$", r.stdout, re.M))
    assert {"reference_tables", "run_receipt"} <= rules
    planned = {state_id_of(x) for x in rules if x.startswith("seg")}
    assert planned == set(stateio.states()), set(stateio.states()) ^ planned
    assert "seg5B_s5_validation" in rules
    assert f"{wd}/results/5B/_passed.flag (send to storage)" in r.stdout


@needs_plugins
def test_jobs_use_the_volume_in_place(dry_run):
    """Inputs and outputs are paths on the volume (the working directory), never pod-local copies;
    logs and benchmarks are written in the pod and sent to the volume."""
    wd, r = dry_run
    out = r.stdout
    assert f"{wd}/results/1A/merchant_ids/_manifest.json (only provide storage uri)" in out
    assert f"{wd}/config/1A/universe.yaml (only provide storage uri)" in out
    assert "(retrieve from storage)" not in out
    assert f"log: {wd}/logs/1A/S0.log (send to storage)" in out
    assert f"benchmark: {wd}/logs/benchmarks/1A/S0.tsv (send to storage)" in out
    assert "Using profiles profiles/kubernetes" in r.stderr


def fake_workflow(provider_name: str | None):
    obj = lambda: SimpleNamespace(retrieve=False)
    rule = SimpleNamespace(log=[SimpleNamespace(flags={"storage_object": obj()})],
                           benchmark=SimpleNamespace(flags={"storage_object": obj()}))
    return SimpleNamespace(storage_settings=SimpleNamespace(default_storage_provider=provider_name),
                           storage_registry=SimpleNamespace(default_storage_provider=SimpleNamespace(retrieve=True)),
                           rules=[rule, SimpleNamespace(log=[], benchmark=None)])


def test_without_storage_nothing_changes():
    wf = fake_workflow(None)
    assert shared_volume.before_rules(wf) is False and shared_volume.after_rules(wf) == 0
    assert wf.storage_registry.default_storage_provider.retrieve is True


def test_fs_storage_is_used_in_place_but_logs_travel():
    wf = fake_workflow("fs")
    assert shared_volume.before_rules(wf) is True
    assert wf.storage_registry.default_storage_provider.retrieve is False
    assert shared_volume.after_rules(wf) == 2
    rule = wf.rules[0]
    assert rule.log[0].flags["storage_object"].retrieve and rule.benchmark.flags["storage_object"].retrieve


def test_a_copying_storage_provider_is_refused(capsys):
    with pytest.raises(SystemExit) as e:
        shared_volume.before_rules(fake_workflow("s3"))
    assert e.value.code == 1
    assert "CORE.STORAGE.PROVIDER_UNSUPPORTED" in capsys.readouterr().err


@pytest.mark.cluster
@needs_plugins
def test_1A_through_pods_equals_a_local_build(tmp_path):
    """Pods (an empty directory, the volume, nothing else) build 1A byte for byte as a local run."""
    for tool in ("git", "rsync"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (the fs storage plugin copies with rsync; sources travel from git)")
    target = ["--config", "preset=tiny", "--", "results/1A/_passed.flag"]
    local = copy_repo(tmp_path.resolve() / "local", with_engine=True)
    r = subprocess.run([*SNAKEMAKE, "--cores", "2", *target], cwd=local, capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    vol = copy_repo(tmp_path.resolve() / "volume", with_engine=True)     # the checkout on the volume
    subprocess.run("git init -q && git add -A && git -c user.name=t -c user.email=t@t commit -qm world",
                   shell=True, cwd=vol, check=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}     # pods import the deployed engine
    r = subprocess.run([sys.executable, str(ROOT / "tests/kubernetes/fake_cluster.py"), str(tmp_path / "pod"),
                        "--seconds-between-status-checks", "2", *target],
                       cwd=vol, env=env, capture_output=True, text=True, timeout=3600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    listed = tmp_path / "stray_parts.txt"       # parts left in earlier pods' directories (fake_cluster.py)
    stray = [*(tmp_path / "pod").rglob("*.parquet"), *([listed] if listed.exists() else [])]
    assert not stray, f"dataset parts written in a pod's own directory, not on the volume: {stray}"
    files = lambda wd: {p.relative_to(wd).as_posix(): p for p in sorted((wd / "results").rglob("*"))
                        if p.is_file() and p.name != "run_report.json"}
    a, b = files(local), files(vol)
    assert a.keys() == b.keys() and any(k.endswith(".parquet") for k in a)
    assert [k for k in a if a[k].read_bytes() != b[k].read_bytes()] == []
    assert "done in" in (vol / "logs/1A/S2.log").read_text()       # the state's log came back from its pod
    assert (vol / "logs/benchmarks/1A/S2.tsv").is_file()


@pytest.mark.parametrize("lang", [None, "ko_KR.UTF-8", "de_DE.UTF-8"])
def test_holiday_names_do_not_depend_on_the_locale(monkeypatch, lang):
    """A pod may run without LANG: the holidays package would then name them in the country's own
    language, and 5A's calendar (labels, event ids) would differ from a build under C.UTF-8."""
    from engine.seg5A.calendar import _public_holidays
    monkeypatch.setenv("LANG", "C.UTF-8")
    want = _public_holidays("KR", [2026])
    for var in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(var, raising=False)
    if lang:
        monkeypatch.setenv("LANG", lang)
    got = _public_holidays("KR", [2026])
    assert got == want and "Korean New Year" in got.values()
