"""Segment 1A on the tiny world: determinism, conservation, keys, bad input, validation."""
from __future__ import annotations

import json
import shutil

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from conftest import build_1A, reseal

from engine.core import contracts, datasets, hashgate
from engine.core.errors import EngineFailure
from engine.seg1A import s0_universe, s1_hurdle, s9_validation

SEG_DATASETS = [d for d, e in contracts.dictionary().items() if e["segment"] == "1A"]


def _read(ctx, ds):
    return datasets.load(ctx.results, ds, verify=False)


def _parquet_files(results):
    return sorted(p.relative_to(results).as_posix() for p in results.rglob("*.parquet"))


# ---------------------------------------------------------------- determinism

def test_two_runs_are_byte_identical(world_a, world_b):
    fa, fb = _parquet_files(world_a.results), _parquet_files(world_b.results)
    assert fa == fb and len(fa) == len(contracts.dictionary())
    for rel in fa:
        assert (world_a.results / rel).read_bytes() == (world_b.results / rel).read_bytes(), rel
    for seg in ("1A", "1B"):
        flag = (world_a.results / seg / "_passed.flag").read_text()
        assert flag == (world_b.results / seg / "_passed.flag").read_text()
        assert flag.startswith("sha256_hex = ") and len(flag.strip()) == 13 + 64
    for s in ("S0", "S1", "S2", "S4", "S6", "S7"):
        t = f"1A/rng/{s}.trace.json"
        assert (world_a.results / t).read_bytes() == (world_b.results / t).read_bytes()


def test_a_different_seed_gives_a_different_world(world_a, tmp_path):
    other = build_1A(tmp_path / "results", seed=7)
    a = pq.read_table(world_a.results / "1A" / "merchant_ids")
    b = pq.read_table(other.results / "1A" / "merchant_ids")
    assert not a.equals(b)


def test_flag_verifies(world_a):
    assert hashgate.verify(world_a.results / "1A", "1B.S0")


# ---------------------------------------------------------------- conservation and keys

def test_outlets_conserve_across_states(world_a):
    cat = _read(world_a, "outlet_catalogue")
    nb = _read(world_a, "s2_nb_outlets")
    alloc = _read(world_a, "s7_allocation")
    hurdle = _read(world_a, "s1_hurdle")
    mids = _read(world_a, "merchant_ids")
    per_m = cat.group_by("merchant_id").agg(pl.len(), pl.col("raw_nb_outlet_draw").first())
    assert per_m.height == mids.height                       # every merchant has >= 1 outlet
    assert (per_m["len"] == per_m["raw_nb_outlet_draw"]).all()
    j = nb.join(per_m, on="merchant_id")
    assert (j["len"] == j["n_outlets"]).all()                # catalogue rows = final N
    s = alloc.group_by("merchant_id").agg(pl.col("count").sum()).join(nb, on="merchant_id")
    assert (s["count"] == s["n_outlets"]).all()              # allocations sum to N
    singles = hurdle.filter(~pl.col("is_multi")).height
    assert cat.height == nb["n_outlets"].sum() + singles
    rows = cat.group_by("merchant_id", "legal_country_iso").len()
    want = alloc.filter(pl.col("count") > 0).rename({"country_iso": "legal_country_iso"})
    jj = want.join(rows, on=["merchant_id", "legal_country_iso"])
    assert jj.height == want.height and (jj["len"] == jj["count"]).all()


def test_ids_and_keys_unique(world_a):
    cat = _read(world_a, "outlet_catalogue")
    assert cat["site_id"].n_unique() == cat.height
    assert cat.select("merchant_id", "legal_country_iso", "site_order").n_unique() == cat.height
    assert cat["site_id"].dtype == pl.UInt64 and cat["merchant_id"].dtype == pl.UInt64
    for ds in SEG_DATASETS:                                  # contract: pk unique, sorted, typed
        contracts.validate_table(pq.read_table(contracts.dataset_path(world_a.results, ds)), ds, "TEST.S0")


def test_candidate_ranks_contiguous_and_home_first(world_a):
    c = _read(world_a, "s3_candidate_set")
    g = c.group_by("merchant_id").agg(pl.col("candidate_rank").sort(), pl.col("is_home").first(), pl.len())
    for ranks, n in zip(g["candidate_rank"].to_list(), g["len"].to_list()):
        assert ranks == list(range(n))
    home = c.filter(pl.col("candidate_rank") == 0)
    assert home["is_home"].all()
    m = _read(world_a, "merchant_ids").join(home, on="merchant_id")
    assert (m["home_country_iso"] == m["country_iso"]).all()


def test_currency_weights_sum_exactly(world_a):
    w = _read(world_a, "ccy_country_weights")
    ulps = (w["weight"] * 10**7).round(0).cast(pl.Int64)
    sums = w.with_columns(ulps.alias("u")).group_by("currency").agg(pl.col("u").sum())
    assert (sums["u"] == 10**7).all()


def test_rng_traces_match_budgets(world_a):
    t0 = json.loads((world_a.results / "1A/rng/S0.trace.json").read_text())
    assert t0["1A.universe"]["draws"] == 3 * world_a.world["merchants"]
    mem = _read(world_a, "s6_membership")
    t6 = json.loads((world_a.results / "1A/rng/S6.trace.json").read_text())
    assert t6["1A.gumbel_key"]["draws"] == mem.height
    rep = json.loads((world_a.results / "1A/validation/rng_accounting.json").read_text())
    assert rep["families"] and all(f["match"] for f in rep["families"].values())


def test_duckdb_and_polars_read_outputs(world_a):
    duckdb = pytest.importorskip("duckdb")
    path = world_a.results / "1A" / "outlet_catalogue" / "*.parquet"
    n = duckdb.sql(f"SELECT count(*) FROM '{path}'").fetchall()[0][0]
    assert n == pl.read_parquet(path).height > 0


# ---------------------------------------------------------------- bad input

def _no_outputs(results):
    return not (results / "1A").exists() or not list((results / "1A").rglob("*.parquet"))


def test_malformed_policy_field_is_named_and_nothing_published(config_copy, tmp_path):
    p = config_copy / "config/1A/hurdle_nb.yaml"
    p.write_text(p.read_text().replace("mean_pi_target: 0.16", "mean_pi_target: 1.7"))
    with pytest.raises(EngineFailure) as e:
        build_1A(tmp_path / "results", root=config_copy)
    assert e.value.code == "1A.S0.INPUT_INVALID"
    assert "calibration.mean_pi_target" in e.value.line() and "hurdle_nb.yaml" in e.value.line()
    assert _no_outputs(tmp_path / "results")


def test_bad_ladder_set_is_named(config_copy, tmp_path):
    p = config_copy / "config/1A/crossborder.yaml"
    p.write_text(p.read_text().replace("admit_sets: [REGIONAL_CORE]", "admit_sets: [NO_SUCH_SET]"))
    with pytest.raises(EngineFailure) as e:
        build_1A(tmp_path / "results", root=config_copy)
    assert e.value.code == "1A.S3.LADDER_INVALID" and "NO_SUCH_SET" in e.value.line()
    assert not (tmp_path / "results/1A/s3_candidate_set").exists()


def test_missing_reference_table(world_copy):
    shutil.rmtree(world_copy.results / "reference" / "countries")
    with pytest.raises(EngineFailure) as e:
        s0_universe.run(world_copy.for_state("1A.S0"))
    assert e.value.code == "1A.S0.REFERENCE_MISSING" and "reference/countries" in e.value.line()


def test_missing_authored_reference_table(config_copy, tmp_path):
    (config_copy / "config/reference/gdp_per_capita.csv").unlink()
    with pytest.raises(EngineFailure) as e:
        build_1A(tmp_path / "results", root=config_copy)
    assert "gdp_per_capita.csv" in e.value.line()
    assert _no_outputs(tmp_path / "results")


def test_flipped_byte_in_bundle_is_refused(world_copy):
    f = world_copy.results / "1A" / "validation" / "corridors.json"
    b = bytearray(f.read_bytes())
    b[10] ^= 0x01
    f.write_bytes(bytes(b))
    with pytest.raises(EngineFailure) as e:
        hashgate.verify(world_copy.results / "1A", "1B.S0")
    assert e.value.code == "1B.S0.UPSTREAM_HASHGATE_DIGEST_MISMATCH"


def test_existing_output_with_different_bytes_conflicts(world_copy):
    target = world_copy.results / "1A" / "s1_hurdle"
    t = pq.read_table(target)
    flipped = t.set_column(3, "is_multi", pc.invert(t.column("is_multi")))
    pq.write_table(flipped, target / "part-00000.parquet")
    with pytest.raises(EngineFailure) as e:
        s1_hurdle.run(world_copy.for_state("1A.S1"))
    assert e.value.code == "1A.S1.IO_WRITE_CONFLICT"


def test_corrupted_upstream_parquet(world_copy):
    f = world_copy.results / "1A" / "merchant_features" / "part-00000.parquet"
    f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2])
    with pytest.raises(EngineFailure) as e:
        s1_hurdle.run(world_copy.for_state("1A.S1"))
    assert e.value.code == "1A.S1.INPUT_CORRUPT"


def test_dataset_of_another_run_is_refused(world_copy):
    world_copy.receipt["parameter_hash"] = "0" * 64
    with pytest.raises(EngineFailure) as e:
        s1_hurdle.run(world_copy.for_state("1A.S1"))
    assert e.value.code == "1A.S1.INPUT_STALE"


# ---------------------------------------------------------------- validation fails closed

def test_validation_fails_when_an_invariant_breaks(world_copy):
    target = world_copy.results / "1A" / "s7_allocation"
    t = pq.read_table(target)
    counts = t.column("count").to_numpy().copy()
    counts[0] += 1                                           # one more outlet than N
    t = t.set_column(t.column_names.index("count"), "count", pa.array(counts, pa.int32()))
    pq.write_table(t, target / "part-00000.parquet")
    reseal(target)
    (world_copy.results / "1A" / "_passed.flag").unlink()
    with pytest.raises(EngineFailure) as e:
        s9_validation.run(world_copy.for_state("1A.S9"))
    assert e.value.code == "1A.S9.VALIDATION_FAILED" and "sum_alloc_equals_n" in e.value.message
    assert not (world_copy.results / "1A" / "_passed.flag").exists()
    summary = json.loads((world_copy.results / "1A/validation/summary.json").read_text())
    assert not summary["passed"] and "sum_alloc_equals_n" in summary["failed_checks"]


def test_validation_fails_on_tampered_trace(world_copy):
    p = world_copy.results / "1A/rng/S6.trace.json"
    d = json.loads(p.read_text())
    d["1A.gumbel_key"]["draws"] += 1
    p.write_text(json.dumps(d))
    with pytest.raises(EngineFailure) as e:
        s9_validation.run(world_copy.for_state("1A.S9"))
    assert "rng_budget_gumbel_key" in e.value.message
    assert not (world_copy.results / "1A" / "_passed.flag").exists()


def test_eligibility_rule_with_unknown_country_is_named(config_copy, tmp_path):
    p = config_copy / "config/1A/crossborder.yaml"
    p.write_text(p.read_text().replace("iso: [BY, CU, IR", "iso: [XQ, CU, IR"))
    with pytest.raises(EngineFailure) as e:
        build_1A(tmp_path / "results", root=config_copy)
    assert e.value.code == "1A.S0.ELIG_RULE_INVALID" and "XQ" in e.value.line()
    assert _no_outputs(tmp_path / "results")
