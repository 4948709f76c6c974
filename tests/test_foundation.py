"""Issue 6: one owner per path and law, deterministic streaming writes, parse-time checks."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine import pipeline
from engine.core import integerise, publish, stateio
from engine.core.context import ROOT, begin_state
from engine.core.errors import EngineFailure

IDENT = {"seed": 1, "parameter_hash": "a" * 64, "manifest_fingerprint": "b" * 64}


# ---------------------------------------------------------------- 1. paths have one owner

def _declared(io: stateio.StateIO, results: Path) -> list[Path]:
    """Files and directories a state may touch: its declared paths, and for a declared flag the
    bundle and gate receipt that verifying it reads."""
    out = [p.parent if p.name == stateio.MANIFEST else p for p in [*io.inputs.values(), *io.outputs.values()]]
    if "bundle" in io.outputs:
        out.append(io.outputs["bundle"].parent)           # the validation/ directory it indexes
    from engine.core.hashgate import gate_upstream
    todo = [name[len("flag_"):] for name in io.inputs if name.startswith("flag_")]
    seen = set()
    while todo:                       # verifying a flag re-verifies the flags its gate recorded
        up = todo.pop()
        if up in seen:
            continue
        seen.add(up)
        seg = results / up
        out += [seg / "_passed.flag", seg / "validation", seg / "S0" / "gate_receipt.json"]
        todo += list(gate_upstream(seg / "S0" / "gate_receipt.json"))
    return out


def _allowed(path: Path, declared: list[Path]) -> bool:
    for d in declared:
        if path == d or d in path.parents:
            return True
        for q in (path, *path.parents):            # inside its own staging sibling
            if q.parent == d.parent and q.name.startswith(f".{d.name}.tmp."):
                return True
    return False


def test_states_open_only_declared_inputs(tmp_path, monkeypatch):
    """Build the tiny world recording every file a state opens under results/ or config/."""
    opened: list[str] = []
    recording = {"on": False}

    def hook(event, args):
        if recording["on"] and event == "open" and isinstance(args[0], (str, Path)):
            opened.append(str(args[0]))
    sys.addaudithook(hook)
    real_read, real_pf = pq.read_table, pq.ParquetFile
    monkeypatch.setattr(pq, "read_table", lambda src, *a, **k: (opened.append(str(src)), real_read(src, *a, **k))[1])
    monkeypatch.setattr(pq, "ParquetFile", lambda src, *a, **k: (opened.append(str(src)), real_pf(src, *a, **k))[1])
    cfg = pipeline.load_config(preset="tiny")
    ctx = pipeline.prepare(tmp_path / "results", cfg)
    results = ctx.results.resolve()
    for seg in pipeline.STATES:
        for name, fn in pipeline.STATES[seg]:
            sctx = ctx.for_state(f"{seg}.{name}")
            begin_state(sctx)
            opened.clear()
            recording["on"] = True
            try:
                fn(sctx)
            finally:
                recording["on"] = False
            declared = [p.resolve() for p in _declared(sctx.io, ctx.results)]
            for f in opened:
                p = Path(f).resolve()
                if results in p.parents or (ROOT / "config") in p.parents:
                    assert _allowed(p, declared), f"{seg}.{name} opened undeclared {p}"


def test_undeclared_input_is_refused(world_a):
    ctx = world_a.for_state("1A.S1")
    with pytest.raises(EngineFailure) as e:
        ctx.io.input("outlet_catalogue")
    assert e.value.code == "CORE.IO.UNDECLARED" and "states.yaml" in e.value.message


def test_rules_take_paths_from_the_dictionary():
    text = "".join((ROOT / "rules" / f).read_text() for f in ("1A.smk", "1B.smk"))
    assert "results/" not in text and "config/" not in text        # no path written by hand
    ins, outs = stateio.declare("1B.S9")
    assert ins["ref_country_geometry"] == "results/reference/country_geometry/_manifest.json"
    assert ins["flag_1A"] == "results/1A/_passed.flag" and "outlet_catalogue" in ins
    ins, _ = stateio.declare("1A.S9")
    assert {"ref_countries", "ref_mcc_codes"} <= set(ins)


def test_config_override_changes_hash_and_outputs(tmp_path):
    base = pipeline.load_config(preset="tiny")
    over = pipeline.load_config(preset="tiny", preset_overrides={"tiny": {"merchants": 60}})
    a = pipeline.prepare(tmp_path / "a" / "results", base)
    b = pipeline.prepare(tmp_path / "b" / "results", over)
    assert a.receipt["parameter_hash"] != b.receipt["parameter_hash"]
    assert b.receipt["effective_config"]["preset_overrides"] == {"tiny": {"merchants": 60}}
    for ctx in (a, b):
        pipeline.run_segment(ctx, "1A")
    ma = pl.read_parquet(a.results / "1A/merchant_ids/*.parquet")
    mb = pl.read_parquet(b.results / "1A/merchant_ids/*.parquet")
    assert ma.height == 50 and mb.height == 60


# ---------------------------------------------------------------- 2. one largest-remainder law

def test_give_remainder_ties_go_to_the_earlier_row_and_negative_deficits_take_back():
    counts = np.array([1, 1, 1, 1], np.int64)
    res = np.array([0.5, 0.7, 0.5, 0.7])
    rank = np.zeros(4, np.int32)
    integerise.give_remainder(counts, res, 0, 4, 3, rank)
    assert counts.tolist() == [2, 2, 1, 2] and rank.tolist() == [3, 1, 4, 2]
    counts = np.array([1, 1, 1, 0], np.int64)
    integerise.give_remainder(counts, np.array([0.1, 0.9, 0.1, 0.0]), 0, 4, -2, rank)
    assert counts.tolist() == [0, 1, 0, 0]          # smallest residues first, ties to the later row, never < 0


def test_split_int_csr_matches_a_reference_per_group():
    mass = np.array([3, 1, 0, 5, 5, 2], np.int64)
    off = np.array([0, 3, 6], np.int64)
    counts, residue, _ = integerise.split_int(mass, off, np.array([7, 4], np.int64))
    assert counts[:3].sum() == 7 and counts[3:].sum() == 4
    assert counts.tolist() == [5, 2, 0, 2, 2, 0]     # 21//4=5 r1, 7//4=1 r3 -> +1; 20//12=1 r8 x2 -> +1 each


def test_no_other_largest_remainder_implementation():
    for p in (ROOT / "engine").rglob("*.py"):
        if p.name == "integerise.py":
            continue
        text = p.read_text()
        assert "argsort(-r" not in text and "sort_indices(resid" not in text, p


# ---------------------------------------------------------------- 3. streaming, deterministic writes

def _rows(n: int) -> pa.Table:
    rng = np.random.default_rng(7)
    return pa.table({"merchant_id": pa.array(np.arange(n, dtype=np.uint64)),
                     "x": pa.array(rng.normal(size=n)),
                     "tz": pa.array(rng.choice(["Europe/Paris", "Asia/Tokyo", "UTC"], n)).dictionary_encode()})


@pytest.mark.parametrize("n_batches", [1, 7, 1000])
def test_batch_boundaries_do_not_change_bytes(tmp_path, n_batches):
    t = _rows(25_000)
    ref = tmp_path / "ref"
    publish.publish_dataset(t, ref, IDENT, "ds", "1A.S1", row_group_rows=4096, rows_per_part=3 * 4096)
    out = tmp_path / f"b{n_batches}"
    edges = np.linspace(0, t.num_rows, n_batches + 1).astype(int)
    with publish.DatasetWriter(out, t.schema, "ds", IDENT, "1A.S1", row_group_rows=4096, rows_per_part=3 * 4096) as w:
        for a, b in zip(edges[:-1], edges[1:]):
            # re-chunk and re-dictionary each batch differently: bytes must not care
            w.write(pa.concat_tables([t.slice(a, (b - a) // 2), t.slice(a + (b - a) // 2, b - a - (b - a) // 2)]))
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(ref).as_posix() for p in ref.rglob("*") if p.is_file())
    assert len([f for f in files if f.endswith(".parquet")]) == 3
    for f in files:
        assert (out / f).read_bytes() == (ref / f).read_bytes(), f
    assert pq.read_table(out).num_rows == 25_000


def test_writer_memory_is_one_row_group(tmp_path):
    t = _rows(10_000)
    w = publish.DatasetWriter(tmp_path / "d", t.schema, "ds", IDENT, "1A.S1", row_group_rows=1000)
    for a in range(0, 10_000, 300):
        w.write(t.slice(a, 300))
        assert w._buffered < 1000 + 300
    w.close()
    assert pq.ParquetFile(tmp_path / "d" / "part-00000.parquet").metadata.num_row_groups == 10


def test_a_killed_writer_leaves_nothing_and_the_next_sweeps_it(tmp_path):
    t = _rows(100)
    stale = tmp_path / ".d.tmp.99999"
    stale.mkdir()
    (stale / "part-00000.parquet").write_bytes(b"half")
    with pytest.raises(RuntimeError):
        with publish.DatasetWriter(tmp_path / "d", t.schema, "ds", IDENT, "1A.S1") as w:
            w.write(t)
            raise RuntimeError("killed")
    assert not (tmp_path / "d").exists() and not list(tmp_path.glob(".d.tmp.*"))
    (tmp_path / ".x.json.tmp.4242").write_text("{")
    publish.publish_text("{}", tmp_path / "x.json", "1A.S0")
    assert not list(tmp_path.glob(".x.json.tmp.*"))


def _build_in_subprocess(results: Path, env: dict) -> None:
    code = ("import sys; from pathlib import Path; from engine import pipeline;"
            "c = pipeline.load_config(preset='tiny'); ctx = pipeline.prepare(Path(sys.argv[1]), c);"
            "[pipeline.run_segment(ctx, s) for s in pipeline.STATES]")
    r = subprocess.run([sys.executable, "-c", code, str(results)], cwd=ROOT, env={**os.environ, **env},
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]


def published_files(results: Path) -> dict[str, bytes]:
    """Every file under results/ except run reports, which carry wall-clock timings (DESIGN §4)."""
    return {p.relative_to(results).as_posix(): p.read_bytes() for p in sorted(results.rglob("*"))
            if p.is_file() and p.name != "run_report.json"}


@pytest.mark.parametrize("env", [{"POLARS_MAX_THREADS": "16"},
                                 {"NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL X86_V3"}],
                         ids=["polars16", "no_avx"])
def test_bytes_do_not_depend_on_threads_or_cpu_features(tmp_path, world_a, env):
    _build_in_subprocess(tmp_path / "results", env)
    a, b = published_files(world_a.results), published_files(tmp_path / "results")
    assert a.keys() == b.keys()
    diff = [k for k in a if a[k] != b[k]]
    assert not diff, diff[:5]


# ---------------------------------------------------------------- 5. what a newcomer hit

def test_verify_command_prints_pass_and_fail(world_copy):
    ok = subprocess.run([sys.executable, "-m", "engine", "verify", str(world_copy.results / "1B")], cwd=ROOT,
                        capture_output=True, text=True)
    assert ok.returncode == 0 and "PASS 1A" in ok.stdout and "PASS 1B" in ok.stdout
    f = world_copy.results / "1A/validation/corridors.json"
    f.write_bytes(f.read_bytes() + b" ")
    bad = subprocess.run([sys.executable, "-m", "engine", "verify", str(world_copy.results / "1B")], cwd=ROOT,
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "FAIL 1A" in bad.stdout and "FAIL 1B" in bad.stdout
    assert "corridors.json" in bad.stdout and "Traceback" not in bad.stdout + bad.stderr


def test_readme_verify_snippet_runs(world_copy):
    from engine.core.hashgate import verify
    f = world_copy.results / "1A/validation/corridors.json"
    f.write_bytes(f.read_bytes() + b" ")
    with pytest.raises(EngineFailure) as e:                 # a clear failure, not ValueError
        verify(world_copy.results / "1A", "USER.S0")
    assert e.value.code == "USER.S0.UPSTREAM_HASHGATE_DIGEST_MISMATCH"
