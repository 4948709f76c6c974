"""Issue 7: flags never outlive their data, no bad input passes, kills resume cleanly.

Each numbered scenario of the issue is reproduced on the tiny world.
"""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from engine.core import hashgate, workflow
from engine.core.context import ROOT
from engine.core.errors import EngineFailure
from engine.seg1B import s0_gate, s3_requirements

SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def _copy_tree(dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "Snakefile", dst)
    for d in ("rules", "scripts", "config", "contracts", "report", "envs", "profiles"):
        shutil.copytree(ROOT / d, dst / d)
    return dst


def smk(wd: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([*SNAKEMAKE, "--cores", "1", *args, "--config", "preset=tiny"], cwd=wd,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """The tiny world built once by Snakemake with --cores 1."""
    wd = _copy_tree(tmp_path_factory.mktemp("built"))
    r = smk(wd)
    assert r.returncode == 0, r.stderr[-3000:]
    return wd


@pytest.fixture()
def wd(built, tmp_path) -> Path:
    dst = tmp_path / "wd"
    shutil.copytree(built, dst, symlinks=True)
    return dst


def _files(results: Path) -> dict[str, bytes]:
    return {p.relative_to(results).as_posix(): p.read_bytes() for p in sorted(results.rglob("*"))
            if p.is_file() and p.name != "run_report.json"}


def test_cores_1_and_2_give_identical_bytes(built, tmp_path):
    other = _copy_tree(tmp_path / "c2")
    r = subprocess.run([*SNAKEMAKE, "--cores", "2", "--config", "preset=tiny"], cwd=other, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert _files(built / "results") == _files(other / "results")


# ---------------------------------------------------------------- 1. missing or corrupt data

@pytest.mark.parametrize("damage", ["rm_dir", "truncate", "flip_byte", "extra_part"])
def test_damaged_dataset_is_rebuilt_not_nothing_to_be_done(wd, damage):
    before = _files(wd / "results")
    target = wd / "results/1A/outlet_catalogue"
    part = target / "part-00000.parquet"
    if damage == "rm_dir":
        shutil.rmtree(target)
    elif damage == "truncate":
        part.write_bytes(part.read_bytes()[:100])
    elif damage == "flip_byte":
        b = bytearray(part.read_bytes())
        b[len(b) // 2] ^= 0xFF
        time.sleep(0.01)
        part.write_bytes(bytes(b))
    else:
        shutil.copy(part, target / "part-00001.parquet")
    r = smk(wd)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Nothing to be done" not in r.stdout + r.stderr
    assert "seg1A_s8_catalogue" in r.stdout + r.stderr
    assert _files(wd / "results") == before                     # rebuilt to the same bytes, flags back


# ---------------------------------------------------------------- 2. the gate covers what is read

def test_flipped_reference_byte_is_refused(world_copy):
    f = next((world_copy.results / "reference/countries").glob("*.parquet"))
    b = bytearray(f.read_bytes())
    b[len(b) // 2] ^= 0x01
    f.write_bytes(bytes(b))
    with pytest.raises(EngineFailure) as e:
        s3_requirements.run(world_copy.for_state("1B.S3"))
    assert e.value.code == "1B.S3.REFERENCE_CHANGED" and "countries" in e.value.line()


def test_states_after_the_gate_refuse_an_upstream_it_never_saw(world_copy):
    """A rebuilt 1A (new flag) without rerunning 1B.S0: 1B.S3 refuses to read it."""
    flag = world_copy.results / "1A/_passed.flag"
    rep = world_copy.results / "1A/validation/validation_report.json"
    rep.write_text(rep.read_text() + "\n")                    # a 1A that validated differently
    index = json.loads((world_copy.results / "1A/validation/index.json").read_text())
    for e in index["files"]:
        e["sha256"] = hashgate.sha256_file(world_copy.results / "1A/validation" / e["path"])
    (world_copy.results / "1A/validation/index.json").write_text(json.dumps(index))
    flag.write_text(hashgate.flag_line(hashgate.bundle_digest(world_copy.results / "1A/validation",
                                                              [e["path"] for e in index["files"]])))
    hashgate.verify(world_copy.results / "1A", "TEST.S0.X")     # 1A itself is valid
    with pytest.raises(EngineFailure) as e:
        s3_requirements.run(world_copy.for_state("1B.S3"))
    assert e.value.code == "1B.S3.UPSTREAM_CHANGED_SINCE_GATE"


def test_upstream_data_changed_under_a_valid_flag_is_refused(world_copy):
    f = world_copy.results / "1A/outlet_catalogue/part-00000.parquet"
    f.write_bytes(f.read_bytes()[:-1] + b"\0")
    with pytest.raises(EngineFailure) as e:
        s3_requirements.run(world_copy.for_state("1B.S3"))
    assert e.value.code in ("1B.S3.UPSTREAM_HASHGATE_DIGEST_MISMATCH", "1B.S3.INPUT_CORRUPT")


def test_internal_dataset_of_another_segment_is_not_readable(world_copy):
    from engine.core import datasets
    with pytest.raises(EngineFailure) as e:
        datasets.check_upstream(world_copy.for_state("1B.S9"), "s7_allocation", "1B.S9")
    assert e.value.code == "1B.S9.NOT_A_HANDOFF"


# ---------------------------------------------------------------- 3. stale flags

def test_refused_gate_leaves_no_flag(wd):
    f = wd / "results/1A/validation/corridors.json"
    f.write_bytes(f.read_bytes() + b" ")                      # 1A's bundle no longer matches its flag
    assert (wd / "results/1B/_passed.flag").exists()
    r = smk(wd, "--forcerun", "seg1B_s0_gate", "results/1B/S0/gate_receipt.json")
    assert r.returncode != 0 and "1B.S0.UPSTREAM_HASHGATE_DIGEST_MISMATCH" in r.stdout + r.stderr
    assert "corridors.json" in r.stdout + r.stderr
    assert not (wd / "results/1B/_passed.flag").exists()


def test_verify_of_a_segment_checks_its_upstream(world_copy):
    (world_copy.results / "1A/_passed.flag").unlink()
    with pytest.raises(EngineFailure) as e:
        hashgate.verify(world_copy.results / "1B", "USER.S0")
    assert e.value.code == "USER.S0.UPSTREAM_FLAG_MISSING" and "1A" in e.value.line()


def test_a_rerunning_state_removes_its_segment_flag(world_copy):
    assert (world_copy.results / "1B/_passed.flag").exists()
    from engine.core.context import begin_state
    begin_state(world_copy.for_state("1B.S4"))
    assert not (world_copy.results / "1B/_passed.flag").exists()


# ---------------------------------------------------------------- 4./5. policies refused at parse time

POLICY_CASES = [
    ("1A/merchant_mix.yaml", "groups.restaurants.p_cnp", ".nan"),
    ("1A/merchant_mix.yaml", "groups.restaurants.p_cnp", ".inf"),
    ("1A/card_market.yaml", "gdp_pc_cap_usd", "-.inf"),
    ("1A/merchant_mix.yaml", "groups.restaurants.p_cnp", "1.5"),
    ("1A/merchant_mix.yaml", "groups.restaurants.p_cnp", "-0.1"),
    ("1A/card_market.yaml", "gdp_pc_cap_usd", "'high'"),
    ("1A/currency.yaml", "total_obs_default", "1e300"),
    ("1A/currency.yaml", "total_obs_default", ".nan"),
    ("1A/currency.yaml", "total_obs_default", "-5"),
    ("1A/currency.yaml", "total_obs_default", "'many'"),
    ("1B/tile_weights.yaml", "basis_mix.population", ".nan"),
    ("1B/tile_weights.yaml", "basis_mix.population", "1e300"),
    ("1B/tile_weights.yaml", "basis_mix.population", "-1"),
    ("1B/tile_weights.yaml", "dp", "99999999999"),
    ("1B/jitter.yaml", "max_attempts", "0"),
    ("1B/jitter.yaml", "max_attempts", "2.5"),
    ("1B/jitter.yaml", "max_attempts", "[1, 2]"),
    ("1B/validation.yaml", "corridors.max_fallback_share.value", ".nan"),
    ("1B/validation.yaml", "corridors.max_fallback_share.severity", "'maybe'"),
    ("1B/grid.yaml", "grid_deg", ".inf"),
    ("1A/hurdle_nb.yaml", "preflight_rejection_max", ".nan"),
    ("1A/hurdle_nb.yaml", "no_such_key", "1"),
]
FILE_CASES = [("1B/jitter.yaml", ""), ("1B/jitter.yaml", "max_attempts: [1,\n"),
              ("1A/universe.yaml", "- a\n- b\n")]


def _set(doc: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    for p in parents:
        doc = doc[p]
    doc[last] = value


def _break(root: Path, rel: str, key: str, raw: str) -> Path:
    p = root / "config" / rel
    doc = yaml.safe_load(p.read_text())
    _set(doc, key, yaml.safe_load(raw))
    p.write_text(yaml.safe_dump(doc))
    return p


@pytest.mark.parametrize("rel,key,raw", POLICY_CASES, ids=[f"{r}:{k}={v}" for r, k, v in POLICY_CASES])
def test_malformed_policy_is_refused_naming_file_and_key(config_copy, rel, key, raw):
    p = _break(config_copy, rel, key, raw)
    with pytest.raises(workflow.ConfigError) as e:
        workflow.check_policies(config_copy)
    msg = str(e.value)
    assert str(p) in msg and (key.split(".")[-1] in msg or "no_such_key" in msg), msg
    assert "\n" not in msg


@pytest.mark.parametrize("rel,text", FILE_CASES, ids=["empty", "broken_yaml", "not_a_mapping"])
def test_empty_or_broken_policy_file_is_named(config_copy, rel, text):
    (config_copy / "config" / rel).write_text(text)
    with pytest.raises(workflow.ConfigError) as e:
        workflow.check_policies(config_copy)
    assert rel in str(e.value)
    if text.startswith("max_attempts"):
        assert f"{rel}:2:" in str(e.value)             # the line of the YAML error


CONFIG_CASES = [({"world": "full"}, "world"), ({"preset": "huge"}, "preset"), ({"seed": -1}, "seed"),
                ({"seed": "x"}, "seed"), ({"presets": {"tiny": {"merchants": float("nan")}}}, "merchants"),
                ({"presets": {"tiny": {"merchants": 10**12}}}, "merchants"), ({"wrold": 1}, "wrold"),
                ({"preset_overrides": {"tiny": {"horizon_days": 0}}}, "horizon_days")]


@pytest.mark.parametrize("over,key", CONFIG_CASES, ids=[k for _, k in CONFIG_CASES])
def test_malformed_config_override_is_one_line_naming_the_key(over, key):
    with pytest.raises(workflow.ConfigError) as e:
        workflow.effective_config(ROOT, over)
    assert key in str(e.value) and "\n" not in str(e.value)


def test_bad_policy_stops_dry_run_before_any_work(tmp_path):
    wd = _copy_tree(tmp_path / "wf")
    _break(wd, "1B/jitter.yaml", "max_attempts", ".nan")
    r = smk(wd, "-n")
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "config/1B/jitter.yaml" in out and "max_attempts" in out
    assert "Traceback" not in out and not (wd / "results").exists()


def test_broken_config_yaml_names_file_and_line(tmp_path):
    wd = _copy_tree(tmp_path / "wf")
    (wd / "config/config.yaml").write_text("preset: tiny\nseed: [1,\n")
    r = smk(wd, "-n")
    assert r.returncode != 0 and "config/config.yaml:3" in r.stdout + r.stderr
    (wd / "config/config.yaml").write_text("")
    r = smk(wd, "-n")
    assert r.returncode != 0 and "config.yaml" in r.stderr and "empty" in r.stderr


def test_typo_in_config_key_is_one_line(tmp_path):
    wd = _copy_tree(tmp_path / "wf")
    r = subprocess.run([*SNAKEMAKE, "-n", "--cores", "1", "--config", "world=full"], cwd=wd, capture_output=True,
                       text=True, timeout=120)
    err = [line for line in r.stderr.splitlines() if line.startswith("ERROR")]
    assert r.returncode != 0 and len(err) == 1 and "'world'" in err[0] and "preset=full" in err[0]


def test_override_reruns_from_the_receipt(wd):
    (wd / "over.yaml").write_text("preset_overrides: {tiny: {merchants: 60}}\n")
    r = subprocess.run([*SNAKEMAKE, "-n", "--cores", "1", "--configfile", "over.yaml", "--config", "preset=tiny"],
                       cwd=wd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "run_receipt" in r.stdout and "seg1A_s0_universe" in r.stdout


# ---------------------------------------------------------------- 6. kills

def test_stale_lock_of_a_killed_run_is_cleared(wd):
    locks = wd / ".snakemake/locks"
    locks.mkdir(parents=True, exist_ok=True)
    (locks / "0.input.lock").write_text(str(wd / "results/1A/_passed.flag"))
    (locks / "0.output.lock").write_text(str(wd / "results/1B/_passed.flag"))
    r = smk(wd)
    assert r.returncode == 0 and "cannot be locked" not in r.stderr.lower(), r.stderr[-2000:]


def test_sigterm_leaves_no_lock_and_rerun_completes(wd):
    before = _files(wd / "results")
    shutil.rmtree(wd / "results/1B")
    p = subprocess.Popen([*SNAKEMAKE, "--cores", "1", "--config", "preset=tiny"], cwd=wd, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    time.sleep(12)
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=120)
    assert not list((wd / ".snakemake/locks").glob("*.lock"))
    r = smk(wd)
    assert r.returncode == 0, r.stderr[-2000:]
    assert _files(wd / "results") == before
    assert not [q for q in (wd / "results").rglob(".*tmp*")]


# ---------------------------------------------------------------- 7. messages

def test_flag_mismatch_shows_both_digests_in_full(world_copy):
    flag = world_copy.results / "1A/_passed.flag"
    flag.write_text(hashgate.flag_line("0" * 64))
    with pytest.raises(EngineFailure) as e:
        hashgate.verify(world_copy.results / "1A", "USER.S0")
    assert "flag=" + "0" * 64 in e.value.line() and len(e.value.context["computed"]) == 64


def test_tampered_index_is_blamed_on_the_index(world_copy):
    index = world_copy.results / "1A/validation/index.json"
    doc = json.loads(index.read_text())
    doc["files"][0]["sha256"] = "f" * 64
    index.write_text(json.dumps(doc))
    with pytest.raises(EngineFailure) as e:
        hashgate.verify(world_copy.results / "1A", "USER.S0")
    assert "index.json" in e.value.line() and "lineage" not in e.value.context.get("file", "")


def test_gate_refuses_a_tampered_upstream_with_the_code(world_copy):
    f = world_copy.results / "1A/validation/lineage.json"
    f.write_bytes(f.read_bytes() + b" ")
    with pytest.raises(EngineFailure) as e:
        s0_gate.run(world_copy.for_state("1B.S0"))
    assert e.value.code == "1B.S0.UPSTREAM_HASHGATE_DIGEST_MISMATCH" and "lineage.json" in e.value.line()



def test_policy_cases_cover_at_least_25_variants():
    assert len(POLICY_CASES) + len(FILE_CASES) + len(CONFIG_CASES) >= 25
