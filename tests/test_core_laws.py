"""Shared laws: identity, publishing, contracts, HashGate, errors, progress."""
from __future__ import annotations

import json
import logging

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.core import contracts, hashgate, identity, ids
from engine.core.errors import EngineFailure
from engine.core.integerise import largest_remainder
from engine.core.progress import Progress
from engine.core.publish import publish_dataset, publish_text, read_dataset

IDENT = {"seed": 1, "parameter_hash": "a" * 64, "manifest_fingerprint": "b" * 64}


def _table(n=5):
    return pa.table({"x": pa.array(range(n), pa.int64())})


# ---------------------------------------------------------------- identity

def test_parameter_hash_changes_with_any_byte(tmp_path):
    (tmp_path / "config").mkdir()
    f = tmp_path / "config" / "a.yaml"
    f.write_text("x: 1\n")
    h1, listing = identity.parameter_hash(identity.parameter_files(tmp_path))
    assert listing == [{"path": "config/a.yaml", "sha256": identity.sha256_file(f)}]
    f.write_text("x: 2\n")
    h2, _ = identity.parameter_hash(identity.parameter_files(tmp_path))
    assert h1 != h2 and len(h1) == 64


def test_parameter_hash_formula(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "b.csv").write_text("k\n1\n")
    (tmp_path / "config" / "a.yaml").write_text("y: 1\n")
    import hashlib
    msg = "".join(f"config/{n}\0{hashlib.sha256((tmp_path / 'config' / n).read_bytes()).hexdigest()}\n"
                  for n in ("a.yaml", "b.csv"))
    got, _ = identity.parameter_hash(identity.parameter_files(tmp_path))
    assert got == hashlib.sha256(msg.encode()).hexdigest()


def test_fingerprint_depends_on_preset_and_versions():
    a = identity.manifest_fingerprint("p" * 64, {"pycountry": "1"}, "tiny")
    assert a != identity.manifest_fingerprint("p" * 64, {"pycountry": "1"}, "dev")
    assert a != identity.manifest_fingerprint("p" * 64, {"pycountry": "2"}, "tiny")


# ---------------------------------------------------------------- publishing

def test_publish_is_atomic_and_carries_identity(tmp_path):
    target = tmp_path / "ds"
    publish_dataset(_table(), target, IDENT, "ds", "1A.S1")
    t = read_dataset(target, "1A.S1")
    assert t.schema.metadata[b"parameter_hash"] == b"a" * 64
    assert not list(tmp_path.glob(".ds.tmp*"))


def test_republish_identical_ok_different_conflicts(tmp_path):
    target = tmp_path / "ds"
    publish_dataset(_table(), target, IDENT, "ds", "1A.S1")
    before = (target / "part-00000.parquet").read_bytes()
    publish_dataset(_table(), target, IDENT, "ds", "1A.S1")        # identical: allowed
    with pytest.raises(EngineFailure) as e:
        publish_dataset(_table(6), target, IDENT, "ds", "1A.S1")
    assert e.value.code == "1A.S1.IO_WRITE_CONFLICT"
    assert (target / "part-00000.parquet").read_bytes() == before   # untouched
    assert not list(tmp_path.glob(".ds.tmp*"))


def test_stale_temp_from_killed_writer_is_cleared(tmp_path):
    stale = tmp_path / ".ds.tmp.99999"
    stale.mkdir()
    (stale / "part-00000.parquet").write_bytes(b"half")
    publish_dataset(_table(), tmp_path / "ds", IDENT, "ds", "1A.S1")
    assert not stale.exists()


def test_control_file_conflict(tmp_path):
    p = tmp_path / "x.json"
    publish_text("a", p, "1A.S0")
    publish_text("a", p, "1A.S0")
    with pytest.raises(EngineFailure, match="IO_WRITE_CONFLICT"):
        publish_text("b", p, "1A.S0")


def test_corrupted_parquet_is_named(tmp_path):
    target = tmp_path / "ds"
    publish_dataset(_table(), target, IDENT, "ds", "1A.S1")
    f = target / "part-00000.parquet"
    f.write_bytes(f.read_bytes()[:-20])
    with pytest.raises(EngineFailure) as e:
        read_dataset(target, "1A.S2")
    assert e.value.code == "1A.S2.INPUT_CORRUPT" and str(target) in e.value.line()


def test_missing_dataset_is_named(tmp_path):
    with pytest.raises(EngineFailure) as e:
        read_dataset(tmp_path / "nope", "1A.S2", "s1_hurdle")
    assert e.value.code == "1A.S2.INPUT_MISSING"


# ---------------------------------------------------------------- contracts

def _merchants(**over):
    cols = {"merchant_id": pa.array([1, 2, 3], pa.uint64()), "mcc": pa.array([5411, 5812, 4829], pa.int32()),
            "channel": pa.array(["card_present"] * 3).dictionary_encode(),
            "home_country_iso": pa.array(["DE", "FR", "US"]).dictionary_encode()}
    cols.update(over)
    return contracts.conform(pa.table(cols), "merchant_ids", "1A.S0")


def test_contract_accepts_valid_table():
    contracts.validate_table(_merchants(), "merchant_ids", "1A.S0")


@pytest.mark.parametrize("over, code, word", [
    ({"merchant_id": pa.array([1, 1, 3], pa.uint64())}, "1A.S0.DUP_PK", "duplicate"),
    ({"merchant_id": pa.array([3, 2, 1], pa.uint64())}, "1A.S0.SORT_INVALID", "sorted"),
    ({"mcc": pa.array([5411, 10000, 1], pa.int32())}, "1A.S0.SCHEMA_INVALID", "maximum"),
    ({"channel": pa.array(["card_present", "atm", "card_present"])}, "1A.S0.SCHEMA_INVALID", "not in"),
    ({"home_country_iso": pa.array(["DE", "fr", "US"])}, "1A.S0.SCHEMA_INVALID", "match"),
])
def test_contract_rejects(over, code, word):
    with pytest.raises(EngineFailure) as e:
        contracts.validate_table(_merchants(**over), "merchant_ids", "1A.S0")
    assert e.value.code == code and word in e.value.message


def test_contract_rejects_nulls_and_types():
    t = _merchants().set_column(1, "mcc", pa.array([1, None, 3], pa.int32()))
    with pytest.raises(EngineFailure, match="nulls"):
        contracts.validate_table(t, "merchant_ids", "1A.S0")
    t = _merchants().set_column(1, "mcc", pa.array([1, 2, 3], pa.int64()))
    with pytest.raises(EngineFailure, match="type"):
        contracts.validate_table(t, "merchant_ids", "1A.S0")


def test_every_dictionary_schema_is_valid_jsonschema():
    for ds in contracts.dictionary():
        schema = contracts.dataset_schema(ds)
        e = contracts.entry(ds)
        assert set(e["primary_key"]) <= set(schema["properties"]), ds


def test_policy_error_names_file_and_field(tmp_path):
    p = tmp_path / "allocation.yaml"
    p.write_text("dirichlet: {enabled: true, total_concentration: -1, home_boost: 1.25, alpha_min: 0.03, "
                 "alpha_max: 150}\nhome_floor_tiers: [{max_n: null, min_home_share: 0.6}]\ndp_resid: 8\n")
    with pytest.raises(EngineFailure) as e:
        contracts.load_policy(p, "1A", "allocation", "1A.S7")
    assert e.value.code == "1A.S7.INPUT_INVALID"
    assert "dirichlet.total_concentration" in e.value.line() and str(p) in e.value.line()


def test_policy_malformed_yaml(tmp_path):
    p = tmp_path / "selection.yaml"
    p.write_text("zero_weight_rule: [exclude\n")
    with pytest.raises(EngineFailure, match="not valid YAML"):
        contracts.load_policy(p, "1A", "selection", "1A.S6")


# ---------------------------------------------------------------- HashGate

def test_hashgate_roundtrip_and_tamper(tmp_path):
    seg = tmp_path / "1A"
    digest = hashgate.publish_bundle(seg, {"a.json": b"{}\n", "sub/b.txt": b"hello"}, True, "1A.S9")
    assert (seg / "_passed.flag").read_text() == f"sha256_hex = {digest}\n"
    import hashlib
    assert digest == hashlib.sha256(b"{}\n" + b"hello").hexdigest()     # ASCII path order
    assert hashgate.verify(seg, "1B.S0") == digest
    p = seg / "validation" / "sub" / "b.txt"
    p.write_bytes(b"hellp")                                             # one flipped byte
    with pytest.raises(EngineFailure) as e:
        hashgate.verify(seg, "1B.S0")
    assert e.value.code == "1B.S0.UPSTREAM_HASHGATE_DIGEST_MISMATCH"


def test_hashgate_tampered_flag_and_missing_flag(tmp_path):
    seg = tmp_path / "1A"
    hashgate.publish_bundle(seg, {"a.json": b"1"}, True, "1A.S9")
    (seg / "_passed.flag").write_text("sha256_hex = " + "0" * 64 + "\n")
    with pytest.raises(EngineFailure, match="UPSTREAM_HASHGATE_DIGEST_MISMATCH"):
        hashgate.verify(seg, "1B.S0")
    (seg / "_passed.flag").unlink()
    with pytest.raises(EngineFailure, match="UPSTREAM_FLAG_MISSING"):
        hashgate.verify(seg, "1B.S0")


def test_hashgate_fail_writes_no_flag(tmp_path):
    seg = tmp_path / "1A"
    hashgate.publish_bundle(seg, {"a.json": b"1"}, False, "1A.S9")
    assert (seg / "validation" / "index.json").exists() and not (seg / "_passed.flag").exists()


def test_hashgate_egress_tamper(tmp_path):
    res = tmp_path
    ds = res / "1A" / "outlet_catalogue"
    publish_dataset(_table(), ds, IDENT, "outlet_catalogue", "1A.S8")
    eg = hashgate.egress_checksums(res, [ds])
    hashgate.publish_bundle(res / "1A", {hashgate.EGRESS: json.dumps(eg).encode()}, True, "1A.S9")
    hashgate.verify(res / "1A", "1B.S0")
    f = ds / "part-00000.parquet"
    b = bytearray(f.read_bytes())
    b[len(b) // 2] ^= 1
    f.write_bytes(bytes(b))
    with pytest.raises(EngineFailure, match="UPSTREAM_HASHGATE_DIGEST_MISMATCH"):
        hashgate.verify(res / "1A", "1B.S0")


# ---------------------------------------------------------------- misc laws

def test_error_codes_are_checked():
    assert EngineFailure("5B.S4.SITE_ALIAS_MISSING", "x", {"file": "f"}).line() == "5B.S4.SITE_ALIAS_MISSING: x [file=f]"
    with pytest.raises(ValueError):
        EngineFailure("bad code", "x")


def test_site_id_formula_and_vector_form():
    import hashlib
    want = int.from_bytes(hashlib.sha256(b"fraudworld.site\x1f12\x1fDE\x1f3").digest()[24:32], "big")
    assert ids.site_id(12, "DE", 3) == want
    v = ids.site_ids(np.array([12, 12], np.uint64), ["DE", "FR"], np.array([3, 1], np.int32))
    assert v[0] == want and v[1] == ids.site_id(12, "FR", 1)


def test_largest_remainder_conserves_and_breaks_ties():
    import polars as pl
    df = pl.DataFrame({"g": [1, 1, 1, 2, 2], "iso": ["B", "A", "C", "X", "Y"], "n": [10, 10, 10, 3, 3],
                       "p": [1 / 3, 1 / 3, 1 / 3, 0.5, 0.5]})
    out = largest_remainder(df, ["g"], "n", "p", [("iso", False)])
    assert out.group_by("g").agg(pl.col("count").sum()).sort("g")["count"].to_list() == [10, 3]
    # equal residuals: ISO A->Z gets the extra unit
    assert out.filter(pl.col("g") == 1).sort("iso")["count"].to_list() == [4, 3, 3]
    assert out.filter(pl.col("g") == 2).sort("iso")["count"].to_list() == [2, 1]


def test_progress_line(caplog):
    p = Progress("S2 nb", total=100, logger=logging.getLogger("t"), every_s=0)
    with caplog.at_level(logging.INFO, logger="t"):
        p.update(50)
    assert "50/100" in caplog.text and "eta" in caplog.text and "rate" in caplog.text


@given(st.lists(st.integers(), max_size=50), st.integers(-1, 60))
@settings(max_examples=60, deadline=None)
def test_prefetched_keeps_order_and_raises_where_the_item_failed(items, fail_at):
    from engine.core.scan import prefetched

    def gen():
        for i, x in enumerate(items):
            if i == fail_at:
                raise ValueError(f"bad item {i}")
            yield x
    got = []
    if 0 <= fail_at < len(items):
        with pytest.raises(ValueError, match=f"bad item {fail_at}"):
            for x in prefetched(gen()):
                got.append(x)
        assert got == items[:fail_at]
    else:
        assert list(prefetched(gen())) == items


def test_one_chunk_does_not_copy_a_single_chunk():
    from engine.core.publish import one_chunk
    a = pa.array(np.arange(1000))
    col = pa.chunked_array([a])
    assert one_chunk(col).buffers()[1].address == a.buffers()[1].address
    two = pa.chunked_array([a, a])
    assert one_chunk(two).to_pylist() == a.to_pylist() * 2
