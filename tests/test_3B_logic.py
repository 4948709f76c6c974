"""3B logic (classification, settlement, edge catalogue, alias tables, realism checks) on synthetic inputs shaped
like 1A's merchant_ids, 1B's tile_index ⨝ tile_weights and the 2A resolver (tests/_geo3b.py)."""
from __future__ import annotations

import hashlib
import math
import struct
from pathlib import Path

import _geo3b as geo  # noqa: E402  (tests/ is on sys.path under pytest)
import numpy as np
import polars as pl
import pytest
from shapely.geometry import box

from engine.core import alias, rng
from engine.core.contracts import load_policy
from engine.core.errors import EngineFailure
from engine.core.geometry import rings
from engine.core.tzcache import tab_tzids
from engine.refdata.tables import country_table, mcc_table
from engine.seg1A.mix import card_market_weights, mix_table
from engine.seg3B import alias_tables, checks, classify, edges, settlement

ROOT = Path(__file__).resolve().parents[1]
IDENT = {"seed": 20260302, "parameter_hash": "a" * 64, "manifest_fingerprint": "b" * 64}
VALID = set(tab_tzids())


def pol(name: str) -> dict:
    return load_policy(ROOT / "config/3B" / f"{name}.yaml", "3B", name, "3B.S0")


def merchants(n: int, seed: int = 3) -> pl.DataFrame:
    """merchant_ids-like: home country, MCC and channel by 1A.S0's law (config/1A/card_market.yaml for the home
    country, config/1A/merchant_mix.yaml for MCC shares and p_cnp)."""
    ref = ROOT / "config/reference"
    ct = country_table(ref / "gdp_per_capita.csv", ref / "gdp_bucket_map.csv", ref / "legal_tender.csv")
    cm = load_policy(ROOT / "config/1A/card_market.yaml", "1A", "card_market", "1A.S0")
    mix = load_policy(ROOT / "config/1A/merchant_mix.yaml", "1A", "merchant_mix", "1A.S0")
    hw = np.cumsum(card_market_weights(ct, cm))
    mt = mix_table(mix, mcc_table()["mcc"].to_numpy())
    w = np.cumsum(mt["weight"].to_numpy())
    r = np.random.default_rng(seed)
    pick = np.minimum(np.searchsorted(w, r.random(n) * w[-1], "right"), len(w) - 1)
    cnp = r.random(n) < mt["p_cnp"].to_numpy()[pick]
    return pl.DataFrame({"merchant_id": np.arange(1, n + 1, dtype=np.uint64),
                         "mcc": mt["mcc"].to_numpy()[pick].astype(np.int32),
                         "channel": np.where(cnp, "card_not_present", "card_present"),
                         "home_country_iso": ct["country_iso"].to_numpy()[
                             np.minimum(np.searchsorted(hw, r.random(n) * hw[-1], "right"), len(hw) - 1)]}) \
        .with_columns(pl.col("channel").cast(pl.Categorical))


@pytest.fixture(scope="module")
def inputs():
    c = geo.cities()
    return c, edges.tile_surface(geo.tiles(c)), geo.tz_stand_in(c)


def run_3b(m, inputs, ident=IDENT):
    c, surf, tz = inputs
    rules = classify.rules_frame(pol("mcc_channel_rules"))
    cl = classify.classify(m, rules, "v1.0.0")
    v = m.join(cl.filter("is_virtual").select("merchant_id"), on="merchant_id")
    st = settlement.settlement_nodes(v, c, pol("virtual_settlement"), tz, VALID, "3.0.2")
    e = edges.edge_catalogue(st, pol("cdn_country_weights"), surf, tz, ident)
    a = alias_tables.build_tables(e.catalogue)
    return cl, st, e, a


@pytest.fixture(scope="module")
def world(inputs):
    m = merchants(4000)
    return (m, *run_3b(m, inputs))


# ---------------------------------------------------------------- S1

def test_classification_known_answers():
    rules = classify.rules_frame(pol("mcc_channel_rules"))
    m = pl.DataFrame({"merchant_id": np.arange(1, 6, dtype=np.uint64), "mcc": np.array([5815, 5815, 7372, 1, 5411], np.int32),
                      "channel": ["card_not_present", "card_present", "card_not_present", "card_not_present",
                                  "card_not_present"]})
    cl = classify.classify(m, rules, "v1.0.0", overrides=pl.DataFrame({"merchant_id": np.array([5], np.uint64),
                                                                       "decision": ["accept"]}))
    rows = cl.with_columns(pl.col(pl.Enum).cast(pl.String)).to_dicts()
    assert rows[0] | {} == {**rows[0], "is_virtual": True, "virtual_mode": "VIRTUAL_ONLY", "decision_reason": "RULE_MATCH",
                            "rule_id": "mcc=5815/cnp", "rule_version": "v1.0.0"}
    assert (rows[1]["virtual_mode"], rows[1]["rule_id"]) == ("NON_VIRTUAL", "mcc=5815/cp")
    assert rows[2]["virtual_mode"] == "HYBRID" and rows[2]["is_virtual"]
    assert (rows[3]["decision_reason"], rows[3]["rule_id"]) == ("NO_RULE_MATCH", None)
    assert (rows[4]["virtual_mode"], rows[4]["decision_reason"]) == ("VIRTUAL_ONLY", "OVERRIDE_ACCEPT")


def test_rules_cover_both_channels_and_refuse_duplicates():
    doc = pol("mcc_channel_rules")
    r = classify.rules_frame(doc)
    assert r.group_by("mcc").len()["len"].eq(2).all()
    assert r.filter(pl.col("channel") == "card_present")["decision"].eq("physical").all()
    assert r.filter(pl.col("decision") == "hybrid").height in (2, 3, 4)
    with pytest.raises(EngineFailure) as e:
        classify.rules_frame({**doc, "rules": doc["rules"] + doc["rules"][:1]})
    assert e.value.code == "3B.S0.RULE_DUPLICATE"


def test_settlement_nodes(world, inputs):
    m, cl, st, e, a = world
    c = inputs[0]
    virt = cl.filter("is_virtual")
    assert st["merchant_id"].equals(virt["merchant_id"]) and st["tzid_settlement"].is_in(list(VALID)).all()
    gid = st["evidence_ref"].str.extract(r"geonameid=(\d+)").cast(pl.Int64)
    j = pl.DataFrame({"geonameid": gid, "iso": st["settlement_country_iso"]}).join(c, on="geonameid", how="left")
    assert (j["iso"] == j["country_iso"]).all()
    mid = int(st["merchant_id"][0])
    want = int.from_bytes(hashlib.sha256(b"3B.SETTLEMENT\x1f" + str(mid).encode()).digest()[24:32], "big")
    assert int(st["settlement_site_id"][0]) == want
    assert (st["tz_source"] == "INGEST").all() and st["lon_deg"].is_between(-180, 180, closed="right").all()
    nowhere = pl.DataFrame({"merchant_id": np.array([1], np.uint64), "home_country_iso": ["AQ"]})
    with pytest.raises(EngineFailure) as ex:
        settlement.settlement_nodes(nowhere, c, pol("virtual_settlement"), inputs[2], VALID)
    assert ex.value.code == "3B.S1.SETTLEMENT_NO_CANDIDATES"


def test_home_country_without_cities_settles_on_its_continent(inputs):
    """Bermuda has no GeoNames city of 15,000 people: its merchants settle in the country of North America
    whose candidate cities hold the most people (the US), with that country's tzid; Antarctica still fails."""
    cities = inputs[0].filter(pl.col("country_iso") != "BM")        # as below the 15,000 floor
    cont = {"BM": "NA", "US": "NA", "CA": "NA", "MX": "NA", "FR": "EU", "AQ": "AN"}
    v = pl.DataFrame({"merchant_id": np.array([7, 8], np.uint64), "home_country_iso": ["BM", "FR"]})
    st = settlement.settlement_nodes(v, cities, pol("virtual_settlement"), inputs[2], VALID, continent_of=cont)
    assert st["settlement_country_iso"].to_list() == ["US", "FR"]
    assert st["tzid_settlement"][0].startswith("America/")
    with pytest.raises(EngineFailure):
        settlement.settlement_nodes(pl.DataFrame({"merchant_id": np.array([9], np.uint64), "home_country_iso": ["AQ"]}),
                                    cities, pol("virtual_settlement"), inputs[2], VALID, continent_of=cont)


# ---------------------------------------------------------------- S2

def test_edge_catalogue_invariants(world, inputs):
    m, cl, st, e, a = world
    cat = e.catalogue
    per = cat.group_by("merchant_id").agg(pl.len().alias("n"), pl.col("edge_weight").sum().alias("w"),
                                          pl.col("edge_seq_index").sort().alias("seq"))
    assert per.height == cl["is_virtual"].sum() > 100                     # every virtual merchant has edges
    assert per["n"].is_between(8, 52).all()
    assert (per["w"] - 1).abs().max() <= 1e-12 and (cat["edge_weight"] > 0).all()
    assert all(s == list(range(n)) for s, n in zip(per["seq"].to_list(), per["n"].to_list()))
    assert not cat["edge_id"].is_duplicated().any() and cat["tzid_operational"].is_in(list(VALID)).all()
    assert cat.equals(cat.sort("merchant_id", "edge_id"))
    r = cat.row(0, named=True)
    h = hashlib.sha256(b"3B.EDGE\x1f" + str(r["merchant_id"]).encode() + b"\x1f" + struct.pack("<I", r["edge_seq_index"]))
    assert r["edge_id"] == int.from_bytes(h.digest()[24:32], "big")
    # settlement coupling: every merchant whose home country has tiles has an edge there
    s = st.select("merchant_id", pl.col("settlement_country_iso").alias("country_iso"))
    assert s.join(cat.select("merchant_id", "country_iso").unique(), on=["merchant_id", "country_iso"], how="anti").height == 0


def test_edge_rng_trace_and_tile_tz_dedup(world, inputs):
    m, cl, st, e, a = world
    t = e.trace.to_dict()
    n_e = e.catalogue.height
    assert t[edges.TILE_FAMILY]["draws"] == t[edges.TILE_FAMILY]["blocks"] == n_e == e.index["edge_count_total"].sum()
    assert t[edges.JITTER_FAMILY]["blocks"] == e.catalogue["attempts"].sum()
    assert t[edges.JITTER_FAMILY]["draws"] == 2 * t[edges.JITTER_FAMILY]["blocks"]
    ev = e.events.group_by("family").agg(pl.col("draws").sum(), pl.col("blocks").sum()).sort("family")
    assert ev["draws"].to_list() == [t[f]["draws"] for f in sorted(t)]


def test_tz_lookup_once_per_distinct_tile(inputs):
    c, surf, _ = inputs
    tz = geo.tz_stand_in(c)
    m = merchants(600, seed=9)
    cl, st, e, a = run_3b(m, (c, surf, tz))
    assert tz.calls[-1] == e.catalogue.select("country_iso", "tile_id").n_unique() < e.catalogue.height


def test_jitter_stays_inside_the_country_geometry():
    # one fake country XA = [0,1]x[0,1]; its tiles straddle the border (interior False), so points are tested
    t = pl.DataFrame({"country_iso": ["XA", "XA"], "tile_id": np.array([1, 2], np.uint64), "centroid_lat_deg": [0.9, 0.1],
                      "centroid_lon_deg": [0.9, 0.1], "weight_fp": [3, 1], "min_lon_deg": [0.5, -0.4],
                      "max_lon_deg": [1.4, 0.6], "min_lat_deg": [0.5, -0.4], "max_lat_deg": [1.4, 0.6],
                      "interior": [False, False], "geom_idx": [0, 0]})
    surf = edges.tile_surface(t)
    cdn = pol("cdn_country_weights")
    cdn = {**cdn, "countries": [{"country_iso": "XA", "weight": 1.0}]}
    settle = pl.DataFrame({"merchant_id": np.arange(1, 41, dtype=np.uint64), "settlement_country_iso": ["XA"] * 40,
                           "lat_deg": [0.5] * 40, "lon_deg": [0.5] * 40})
    e = edges.edge_catalogue(settle, cdn, surf, lambda la, lo, iso: np.full(len(la), "Etc/UTC", object), IDENT,
                             rings=rings([box(0, 0, 1, 1)]))
    cat = e.catalogue
    assert cat["lat_deg"].is_between(0, 1).all() and cat["lon_deg"].is_between(0, 1).all()
    assert cat["attempts"].max() > 1 and not cat["jitter_fallback"].any()


# ---------------------------------------------------------------- S3

def test_alias_decodes_to_weights(world):
    m, cl, st, e, a = world
    d = e.catalogue.sort("merchant_id", "edge_seq_index")
    off, pq, al = alias.unpack_edge_blob(a.blob, a.index.filter(pl.col("scope") == "MERCHANT")["blob_offset_bytes"],
                                         a.index.filter(pl.col("scope") == "MERCHANT")["blob_length_bytes"])
    assert np.array_equal(off, a.offsets) and np.array_equal(pq, a.prob_q) and np.array_equal(al, a.alias)
    k = np.diff(off)
    num = alias.decode_numerators(off, pq, al, alias.EDGE_BITS)
    p = num / (np.repeat(k, k) * float(1 << alias.EDGE_BITS))
    assert np.max(np.abs(p - d["edge_weight"].to_numpy())) <= 1e-6 and a.max_abs_delta <= 1e-6
    g = a.index.filter(pl.col("scope") == "GLOBAL").row(0, named=True)
    assert g["merchant_alias_checksum"] == hashlib.sha256(a.blob).hexdigest() and g["blob_length_bytes"] == len(a.blob)
    assert a.index["blob_offset_bytes"].head(-1).is_sorted() and len(a.blob) % 8 == 0


def _chi2_crit(df: int, z: float = 3.090232) -> float:
    """Wilson-Hilferty upper quantile of chi-square(df) at 1 - 0.001."""
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


def test_alias_draws_pass_chi_square(world):
    m, cl, st, e, a = world
    big = int(np.argmax(np.diff(a.offsets)))
    lo, hi = a.offsets[big], a.offsets[big + 1]
    n = 1_000_000
    key, h, l = rng.derive_stream("3B.test_edge_pick", "f" * 64, "p" * 64, 1, "", "chi2")
    u = rng.uniforms_at(np.uint64(key), np.uint64(h), np.uint64(l), n)
    slots = alias.edge_pick_many(u, 0, np.array([0, hi - lo]), a.prob_q[lo:hi], a.alias[lo:hi])
    obs = np.bincount(slots, minlength=hi - lo)
    w = e.catalogue.filter(pl.col("merchant_id") == a.index["merchant_id"][big]).sort("edge_seq_index")["edge_weight"].to_numpy()
    exp = n * w
    stat = float(((obs - exp) ** 2 / exp).sum())
    assert stat < _chi2_crit(hi - lo - 1), stat


def test_universe_hash_components():
    d = {c: hashlib.sha256(c.encode()).hexdigest() for c in alias_tables.COMPONENTS}
    u = alias_tables.universe_hash(d)
    raw = b"".join(bytes.fromhex(d[c]) for c in sorted(d))
    assert u["edge_universe_hash"] == hashlib.sha256(raw).hexdigest()
    assert [x["name"] for x in u["components"]] == sorted(d)


# ---------------------------------------------------------------- determinism, checks, failures

def test_determinism(inputs):
    m = merchants(500, seed=4)
    a = run_3b(m, inputs)
    b = run_3b(m, inputs)
    assert a[2].catalogue.equals(b[2].catalogue) and a[3].blob == b[3].blob and a[1].equals(b[1])
    c = run_3b(m, inputs, {**IDENT, "seed": IDENT["seed"] + 1})
    assert not a[2].catalogue["lat_deg"].equals(c[2].catalogue["lat_deg"])
    # edges of a merchant do not depend on which other merchants are in the run (per-merchant streams)
    sub = run_3b(m.filter(pl.col("merchant_id") <= 200), inputs)
    keep = sub[2].catalogue["merchant_id"].unique()
    assert a[2].catalogue.filter(pl.col("merchant_id").is_in(keep.implode())).equals(sub[2].catalogue)


def test_structural_and_realism_checks(world):
    m, cl, st, e, a = world
    s = checks.structural(cl, m, st, e.catalogue, e.index, VALID)
    assert checks.overall(s) == "PASS", s
    r = checks.realism(cl, m, st, e.catalogue, a.max_abs_delta, pol("virtual_validation"))
    assert checks.overall(r) == "PASS", r
    assert all(x["status"] != "INSUFFICIENT_DATA" for x in r)
    flat = e.catalogue.with_columns((1.0 / pl.len().over("merchant_id")).alias("edge_weight"),
                                    pl.lit("US").alias("country_iso"))
    bad = {x["check_id"]: x["status"] for x in checks.realism(cl, m, st, flat, a.max_abs_delta, pol("virtual_validation"))}
    assert bad["V04_COUNTRY_JS_MEDIAN"] == "FAIL"


def test_malformed_policy_is_named(tmp_path):
    import yaml
    doc = pol("cdn_country_weights")
    doc["edge_topology"]["edge_count_clamp"] = [0, 52]
    p = tmp_path / "cdn_country_weights.yaml"
    p.write_text(yaml.safe_dump(doc))
    with pytest.raises(EngineFailure) as e:
        load_policy(p, "3B", "cdn_country_weights", "3B.S0")
    assert e.value.code == "3B.S0.INPUT_INVALID" and "edge_count_clamp" in e.value.message


def test_world_without_virtual_merchants_gives_typed_empty_tables(inputs):
    """All card-present: nothing virtual, so no edges; the index still has its one typed GLOBAL row over an
    empty blob (a 50-merchant world draws no virtual merchant for about one seed in six)."""
    m = merchants(200).with_columns(pl.lit("card_present").cast(pl.Categorical).alias("channel"))
    cl, st, e, a = run_3b(m, inputs)
    assert not cl["is_virtual"].any() and st.height == 0 and e.catalogue.height == 0
    assert a.blob == b"" and a.header["merchants"] == 0 and a.max_abs_delta == 0.0
    assert a.index.schema == alias_tables.build_tables(world_like_catalogue()).index.schema
    g = a.index.row(0, named=True)
    assert a.index.height == 1 and g["scope"] == "GLOBAL" and g["merchant_id"] is None
    assert g["blob_length_bytes"] == 0 and g["edge_count_total"] == 0
    assert g["merchant_alias_checksum"] == hashlib.sha256(b"").hexdigest()
    assert checks.overall(checks.structural(cl, m, st, e.catalogue, e.index, VALID)) == "PASS"
    r = checks.realism(cl, m, st, e.catalogue, a.max_abs_delta, pol("virtual_validation"))
    assert checks.overall(r) == "PASS", r


def world_like_catalogue() -> pl.DataFrame:
    return pl.DataFrame({"merchant_id": [7, 7, 9], "edge_seq_index": [0, 1, 0], "edge_weight": [0.25, 0.75, 1.0]},
                        schema={"merchant_id": pl.UInt64, "edge_seq_index": pl.Int32, "edge_weight": pl.Float64})
