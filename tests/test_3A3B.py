"""Segments 3A and 3B on the tiny world: zone splits, virtual merchants, edges, the alias blob, gates,
policies refused at parse time, determinism of what test_1A's byte comparison does not cover."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import math

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import reseal

from engine.core import alias, datasets, hashgate, rng
from engine.core.context import ROOT
from engine.core.contracts import load_policy
from engine.core.errors import EngineFailure
from engine.core.workflow import ConfigError, check_policies
from engine.seg2A.tz_tables import zone_tables
from engine.seg3A import priors
from engine.seg3A import s0_gate as gate_3A
from engine.seg3A import s6_validation as val_3A
from engine.seg3B import s0_gate as gate_3B
from engine.seg3B.tz_lookup import Resolver

PAIR = ["merchant_id", "legal_country_iso"]


def _read(ctx, ds):
    return datasets.load(ctx.results, ds, verify=False)


# ---------------------------------------------------------------- 3A

def test_zone_splits_conserve_counts_per_pair(world_a):
    za = _read(world_a, "zone_alloc")
    q = _read(world_a, "s1_escalation_queue")
    n = _read(world_a, "outlet_catalogue").group_by(PAIR).len()
    assert q.height == n.height and q.join(n, on=PAIR).filter(pl.col("site_count") != pl.col("len")).height == 0
    per = za.group_by(PAIR).agg(pl.col("zone_site_count").sum().alias("s"), pl.col("site_count").first())
    assert per.height == int(q["is_escalated"].sum()) > 0                   # every escalated pair, nothing else
    assert (per["s"] == per["site_count"]).all() and (za["zone_site_count"] >= 0).all()
    assert per.join(n, on=PAIR).filter(pl.col("s") != pl.col("len")).height == 0


def test_zone_alloc_tzids_belong_to_the_pair_country(world_a):
    za = _read(world_a, "zone_alloc")
    tab = priors.zone_table("zone.tab").rename({"country_iso": "legal_country_iso"})
    assert za.join(tab, on=["legal_country_iso", "tzid"], how="anti").height == 0
    # every zone of Z(c) is listed for an escalated pair, zero counts kept
    want = za.select(PAIR).unique().join(tab, on="legal_country_iso")
    assert want.height == za.height


def test_pairs_in_single_zone_countries_never_escalate(world_a):
    q = _read(world_a, "s1_escalation_queue")
    zc = priors.zone_table("zone.tab").group_by("country_iso").len()
    single = set(zc.filter(pl.col("len") == 1)["country_iso"])
    qs = q.filter(pl.col("legal_country_iso").is_in(sorted(single)))
    assert qs.height > 0 and not qs["is_escalated"].any()
    assert (qs["decision_reason"] == "forced_monolithic").all()


def test_dirichlet_trace_matches_events(world_a):
    tr = json.loads((world_a.results / "3A/rng/S3.trace.json").read_text())["3A.zone_dirichlet"]
    ev = _read(world_a, "rng_event_zone_dirichlet")
    assert tr["events"] == ev.height and tr["draws"] == ev["draws"].sum() and tr["blocks"] == ev["blocks"].sum()


def test_universe_hash_recomputes_and_reaches_3B(world_a):
    doc = json.loads((world_a.results / "3A/zone_alloc_universe_hash.json").read_text())
    raw = b"".join(bytes.fromhex(doc[k]) for k in ("zone_alpha_digest", "theta_digest", "zone_floor_digest",
                                                    "day_effect_digest", "zone_alloc_parquet_digest"))
    assert doc["routing_universe_hash"] == hashlib.sha256(raw).hexdigest() and doc["coverage"] == "escalated_only"
    gate = json.loads((world_a.results / "3B/S0/gate_receipt.json").read_text())
    assert gate["routing_universe_hash_3A"] == doc["routing_universe_hash"]


def test_3A_validation_fails_when_counts_break(world_copy):
    d = world_copy.results / "3A/zone_alloc"
    za = _read(world_copy, "zone_alloc")
    bad = za.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(pl.col("zone_site_count") + 1)
                          .otherwise("zone_site_count").alias("zone_site_count"))
    f = d / "part-00000.parquet"
    t = pq.read_table(f)
    pq.write_table(t.set_column(t.schema.get_field_index("zone_site_count"), "zone_site_count",
                                bad["zone_site_count"].to_arrow()), f)
    reseal(d)
    with pytest.raises(EngineFailure) as e:
        val_3A.run(world_copy.for_state("3A.S6"))
    assert e.value.code == "3A.S6.VALIDATION_FAILED" and "chk_s5_zone_alloc_counts" in e.value.message
    assert not (world_copy.results / "3A/_passed.flag").exists()


# ---------------------------------------------------------------- 3B

def test_every_virtual_merchant_has_edges_with_valid_tzids(world_a):
    cl, st = _read(world_a, "virtual_classification_3B"), _read(world_a, "virtual_settlement_3B")
    cat = _read(world_a, "edge_catalogue_3B")
    virt = cl.filter("is_virtual")["merchant_id"]
    assert virt.len() > 0 and st["merchant_id"].sort().equals(virt.sort())
    assert cat["merchant_id"].unique().sort().equals(virt.sort())
    per = cat.group_by("merchant_id").len()
    assert (per["len"] >= 1).all()
    zones = sorted(zone_tables().zones)
    assert st["tzid_settlement"].is_in(zones).all() and cat["tzid_operational"].is_in(zones).all()
    cache = set(_read(world_a, "tz_timetable_cache")["tzid"].unique())      # 5B localises through 2A's cache
    assert set(st["tzid_settlement"]) | set(cat["tzid_operational"]) <= cache


def test_edge_weights_per_merchant_sum_to_one(world_a):
    cat = _read(world_a, "edge_catalogue_3B")
    per = cat.group_by("merchant_id").agg((pl.col("edge_weight").sum() - 1).abs().alias("d"),
                                          pl.col("edge_seq_index").sort().alias("seq"), pl.len())
    assert per["d"].max() <= 1e-12 and (cat["edge_weight"] > 0).all()
    assert all(s == list(range(n)) for s, n in zip(per["seq"].to_list(), per["len"].to_list()))


def _blob(ctx):
    idx = _read(ctx, "edge_alias_index_3B")
    blob = (ctx.results / "3B/edge_alias_blob/edge_alias_blob_3B.bin").read_bytes()
    mr = idx.filter(pl.col("scope") == "MERCHANT")
    return idx, blob, mr, alias.unpack_edge_blob(blob, mr["blob_offset_bytes"], mr["blob_length_bytes"])


def test_alias_blob_decodes_to_the_weights(world_a):
    idx, blob, mr, (off, prob_q, al) = _blob(world_a)
    g = idx.filter(pl.col("scope") == "GLOBAL").row(0, named=True)
    assert g["merchant_alias_checksum"] == hashlib.sha256(blob).hexdigest() and g["blob_length_bytes"] == len(blob)
    cat = _read(world_a, "edge_catalogue_3B").sort("merchant_id", "edge_seq_index")
    assert mr["merchant_id"].equals(cat["merchant_id"].unique(maintain_order=True))
    k = np.diff(off)
    p = alias.decode_numerators(off, prob_q, al, alias.EDGE_BITS) / (np.repeat(k, k) * float(1 << alias.EDGE_BITS))
    assert np.max(np.abs(p - cat["edge_weight"].to_numpy())) <= 1e-6


def test_alias_draws_pass_chi_square(world_a):
    _, _, mr, (off, prob_q, al) = _blob(world_a)
    i = int(np.argmax(np.diff(off)))
    lo, hi = int(off[i]), int(off[i + 1])
    n = 1_000_000
    key, h, l = rng.derive_stream("3B.test_edge_pick", "f" * 64, "p" * 64, 1, "", "chi2")
    u = rng.uniforms_at(np.uint64(key), np.uint64(h), np.uint64(l), n)
    obs = np.bincount(alias.edge_pick_many(u, 0, np.array([0, hi - lo]), prob_q[lo:hi], al[lo:hi]), minlength=hi - lo)
    w = _read(world_a, "edge_catalogue_3B").filter(pl.col("merchant_id") == mr["merchant_id"][i]) \
        .sort("edge_seq_index")["edge_weight"].to_numpy()
    stat = float(((obs - n * w) ** 2 / (n * w)).sum())
    df = hi - lo - 1
    crit = df * (1 - 2 / (9 * df) + 3.090232 * math.sqrt(2 / (9 * df))) ** 3      # chi2(df) at 1 - 0.001
    assert stat < crit, stat


def test_blob_and_flags_are_deterministic(world_a, world_b):
    rel = "3B/edge_alias_blob/edge_alias_blob_3B.bin"
    assert (world_a.results / rel).read_bytes() == (world_b.results / rel).read_bytes()
    for f in ("3A/_passed.flag", "3B/_passed.flag", "3A/zone_alloc_universe_hash.json", "3B/edge_universe_hash_3B.json",
              "3A/rng/S3.trace.json", "3B/rng/S2.trace.json"):
        assert (world_a.results / f).read_bytes() == (world_b.results / f).read_bytes(), f


def test_segment_flags_verify(world_a):
    for seg in ("3A", "3B"):
        assert hashgate.verify(world_a.results / seg, "USER.S0")


# ---------------------------------------------------------------- gates and policies

def test_3A_gate_refuses_missing_2A_flag(world_copy):
    (world_copy.results / "2A/_passed.flag").unlink()
    with pytest.raises(EngineFailure) as e:
        gate_3A.run(world_copy.for_state("3A.S0"))
    assert e.value.code == "3A.S0.UPSTREAM_FLAG_MISSING"


def test_3A_gate_refuses_tampered_2A_bundle(world_copy):
    f = world_copy.results / "2A/validation/legality_report.json"
    f.write_bytes(f.read_bytes() + b" ")
    with pytest.raises(EngineFailure) as e:
        gate_3A.run(world_copy.for_state("3A.S0"))
    assert e.value.code == "3A.S0.UPSTREAM_HASHGATE_DIGEST_MISMATCH"


def test_3B_gate_refuses_missing_3A_flag(world_copy):
    (world_copy.results / "3A/_passed.flag").unlink()
    with pytest.raises(EngineFailure) as e:
        gate_3B.run(world_copy.for_state("3B.S0"))
    assert e.value.code == "3B.S0.UPSTREAM_FLAG_MISSING"


def test_3B_gate_refuses_tampered_3A_bundle(world_copy):
    f = world_copy.results / "3A/validation/zone_alloc_universe_hash.json"
    f.write_bytes(f.read_bytes().replace(b'"coverage"', b'"Coverage"'))
    with pytest.raises(EngineFailure) as e:
        gate_3B.run(world_copy.for_state("3B.S0"))
    assert e.value.code == "3B.S0.UPSTREAM_HASHGATE_DIGEST_MISMATCH"


@pytest.mark.parametrize("seg, name, key, value", [
    ("3A", "zone_mixture_policy", "theta_mix", 0.95),
    ("3A", "validation", "min_population", -1),
    ("3B", "cdn_country_weights", "edge_topology", None),
])
def test_malformed_policy_is_named_at_parse_time(config_copy, seg, name, key, value):
    p = config_copy / f"config/{seg}/{name}.yaml"
    doc = yaml.safe_load(p.read_text())
    if value is None:
        doc[key]["edge_count_clamp"] = [0, 52]
        key = "edge_count_clamp"
    else:
        doc[key] = value
    p.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError) as e:
        check_policies(config_copy)
    assert str(p) in str(e.value) and key in str(e.value)


def test_resolver_is_2A_ladder_known_answers():
    pol = {n: load_policy(ROOT / f"config/2A/{n}.yaml", "2A", n, "3B.S1") for n in ("tz_nudge", "tz_overrides")}
    r = Resolver(pol["tz_nudge"], pol["tz_overrides"], dt.date(2026, 3, 2))
    tz, src = r([40.7128, 48.8566, 43.8, 0.0, 0.0], [-74.006, 2.3522, 87.6, -30.0, -30.0], ["US", "FR", "CN", "BR", "XX"])
    assert list(tz[:2]) == ["America/New_York", "Europe/Paris"] and list(src[:2]) == ["POLYGON", "POLYGON"]
    assert tz[2] in zone_tables().country_zones["CN"]              # Urumqi: polygon, or the CN override if ambiguous
    assert (tz[3], src[3]) == (zone_tables().principal("BR"), "FALLBACK")   # at sea: the country's principal zone
    assert tz[4] is None and src[4] is None and r.calls == [5]
