"""5A at scale: the background row-group encoder, per-schema write options, the streamed validation
scan of the UTC surface (engine.core.scan) and S4's key-order read of the baseline."""
from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import reseal

from engine.core import publish
from engine.core.errors import EngineFailure
from engine.core.publish import DatasetWriter, read_dataset, read_manifest
from engine.core.scan import scan_dataset
from engine.seg5A import baseline, s5_validation

IDENT = {"seed": 1, "parameter_hash": "0" * 64, "manifest_fingerprint": "1" * 64}
UTC_DIR = "5A/merchant_zone_scenario_utc/scenario_id=baseline_v1"


def _rows(n: int) -> pa.Table:
    rng = np.random.default_rng(3)
    return pa.table({"k": pa.array(np.arange(n, dtype=np.int64)), "x": pa.array(rng.normal(size=n)),
                     "tz": pa.array(rng.choice(["Europe/Paris", "Asia/Tokyo", "UTC"], n)).dictionary_encode()})


def _write(out, t, **kw):
    with DatasetWriter(out, t.schema, "ds", IDENT, "1A.S1", row_group_rows=1000, rows_per_part=3000, **kw) as w:
        for a in range(0, t.num_rows, 700):
            w.write(t.slice(a, 700))
    return read_manifest(out)["files"]


def test_background_encoder_gives_the_serial_bytes(tmp_path, monkeypatch):
    t = _rows(10_500)
    a = _write(tmp_path / "a", t)
    monkeypatch.setattr(publish, "IN_FLIGHT", 0)            # every row group encoded before the next write
    b = _write(tmp_path / "b", t)
    assert a == b and len(a) == 4


def test_encoder_error_surfaces_and_leaves_nothing(tmp_path, monkeypatch):
    calls = []

    def boom(writer, rg, rows, canonical=False):
        calls.append(rows)
        if len(calls) == 2:
            raise OSError("disk full")
        writer.write_table(rg, row_group_size=rows)
    monkeypatch.setattr(publish, "_encode", boom)
    with pytest.raises(OSError, match="disk full"):
        _write(tmp_path / "d", _rows(10_000))
    assert not (tmp_path / "d").exists() and not list(tmp_path.glob(".d.tmp.*"))


def test_floats_not_dictionary_encoded_and_dictionary_columns_without_statistics(tmp_path):
    _write(tmp_path / "d", _rows(2_000))
    md = pq.ParquetFile(tmp_path / "d" / "part-00000.parquet").metadata.row_group(0)
    col = {md.column(i).path_in_schema: md.column(i) for i in range(md.num_columns)}
    assert not any("DICTIONARY" in e for e in col["x"].encodings)
    assert any("DICTIONARY" in e for e in col["k"].encodings)
    assert col["k"].is_stats_set and col["x"].is_stats_set and not col["tz"].is_stats_set


def test_scan_yields_the_published_rows_in_order(world_a):
    ctx = world_a.for_state("5A.S5")
    got = [(p, t) for p, t in scan_dataset(ctx, s5_validation.UTC, "5A.S5")]
    assert {p["scenario_id"] for p, _ in got} == {"baseline_v1"}
    whole = read_dataset(world_a.results / "5A/merchant_zone_scenario_utc", "T").drop_columns(["scenario_id"])
    assert pa.concat_tables([t for _, t in got]).equals(whole)


def _rewrite_utc(world, edit, row_group_size=None):
    d = world.results / UTC_DIR
    f = d / "part-00000.parquet"
    t = pq.read_table(f)
    pq.write_table(edit(t), f, row_group_size=row_group_size)
    reseal(world.results / "5A/merchant_zone_scenario_utc")


@pytest.mark.parametrize("where", ["inside", "row_group_edge"])
def test_scan_refuses_rows_out_of_key_order(world_copy, where):
    def swap(t, i):
        idx = np.arange(t.num_rows)
        idx[[i, i + 1]] = idx[[i + 1, i]]
        return t.take(pa.array(idx))
    if where == "inside":
        _rewrite_utc(world_copy, lambda t: swap(t, 5))
    else:                                                    # the swap straddles two row groups
        _rewrite_utc(world_copy, lambda t: swap(t, 99), row_group_size=100)
    ctx = world_copy.for_state("5A.S5")
    with pytest.raises(EngineFailure) as e:
        list(scan_dataset(ctx, s5_validation.UTC, "5A.S5"))
    assert e.value.code == "5A.S5.DUP_PK"


def test_scan_refuses_a_duplicate_row_across_row_groups(world_copy):
    def dup(t):
        idx = np.arange(t.num_rows)
        idx[100] = 99
        return t.take(pa.array(idx))
    _rewrite_utc(world_copy, dup, row_group_size=100)
    with pytest.raises(EngineFailure) as e:
        list(scan_dataset(world_copy.for_state("5A.S5"), s5_validation.UTC, "5A.S5"))
    assert e.value.code == "5A.S5.DUP_PK"


def test_s5_fails_on_a_negative_lambda(world_copy):
    def neg(t):
        lam = t.column("lambda_utc_scenario").to_numpy().copy()
        lam[7] = -1.0
        return t.set_column(4, "lambda_utc_scenario", pa.array(lam))
    _rewrite_utc(world_copy, neg)
    with pytest.raises(EngineFailure) as e:
        s5_validation.run(world_copy.for_state("5A.S5"))
    assert e.value.code == "5A.S5.VALIDATION_FAILED" and "schema_merchant_zone_scenario_utc_5A" in str(e.value)


def test_base_matrix_checks_the_keys():
    prof = pl.DataFrame({"merchant_id": np.array([1, 1, 2], np.uint64), "zone_representation": ["A/x", "B/y", "A/x"]})
    n = prof.height
    keys = {"merchant_id": pa.array(np.repeat(prof["merchant_id"].to_numpy(), 168)),
            "zone_representation": pa.array(np.repeat(prof["zone_representation"].to_numpy(), 168)).dictionary_encode(),
            "bucket_index": pa.array(np.tile(np.arange(168, dtype=np.int16), n))}
    lam = np.arange(n * 168, dtype=np.float64)
    t = pa.table({**keys, "lambda_local_base": pa.array(lam)})
    assert np.array_equal(baseline.base_matrix(t, prof), lam.reshape(n, 168))
    for bad in (t.slice(1), t.take(pa.array(np.r_[168:336, 0:168, 336:504]))):
        with pytest.raises(EngineFailure) as e:
            baseline.base_matrix(bad, prof)
        assert e.value.code == "5A.S4.BASELINE_PROFILE_MISMATCH"


def test_checked_max_is_max_or_minus_one_on_bad_values():
    from engine.seg5A.kernels import checked_max
    assert checked_max(np.array([1.0, 3.0, 2.0])) == 3.0 and checked_max(np.zeros(0)) == 0.0
    for bad in (np.nan, -0.5, np.inf):
        assert checked_max(np.array([1.0, bad, 2.0])) == -1.0
