"""Issue 8, layer-1 realism: land-only borders, the merchant-mix and card-market priors, and the
corridors that measure them (including that each can fail)."""
from __future__ import annotations

import copy
import json

import numpy as np
import polars as pl
import pytest
import shapely
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.core.context import ROOT
from engine.core.errors import EngineFailure
from engine.core.validation import Checks
from engine.refdata import geo
from engine.seg1A import mix, realism
from engine.seg1B import landmask

CFG = ROOT / "config" / "1A"


def _yaml(name):
    return yaml.safe_load((CFG / name).read_text())


@pytest.fixture(scope="module")
def mcc_codes():
    from engine.refdata import tables
    return np.sort(tables.mcc_table()["mcc"].to_numpy().astype(np.int64))


# ---------------------------------------------------------------- borders

@pytest.fixture(scope="module")
def islands():
    """Countries whose old (time-zone) borders put most sites at sea, plus Andorra's old 5-vertex box."""
    return geo.country_geometries(pl.DataFrame({"country_iso": ["AD", "BH", "HK", "KY", "SC", "SG"]}))


def test_borders_are_natural_earth_land_only(islands):
    assert set(islands["source"]) == {"natural_earth_10m"}
    rng = np.random.default_rng(0)
    for iso, wkt in zip(islands["country_iso"], islands["wkt"]):
        g = shapely.from_wkt(wkt)
        x0, y0, x1, y1 = max(g.geoms, key=lambda p: p.area).bounds     # archipelagos: the main island
        x, y = rng.uniform(x0, x1, 20000), rng.uniform(y0, y1, 20000)
        inside = shapely.intersects_xy(g, x, y)
        assert inside.sum() > 20, iso
        sea = landmask.at_sea(y[inside], x[inside]).mean()
        assert sea < 0.10, (iso, sea)    # 1 km mask vs 8 km-wide Mahe: ~5%; old tz polygons: KY 26/26 at sea


def test_borders_are_fine_and_hold_their_representative_point(islands):
    for iso, wkt, lon, lat in islands.select("country_iso", "wkt", "rep_lon", "rep_lat").iter_rows():
        g = shapely.from_wkt(wkt)
        assert g.is_valid and shapely.intersects_xy(g, lon, lat), iso
    ad = shapely.from_wkt(islands.filter(pl.col("country_iso") == "AD")["wkt"][0])
    assert shapely.get_num_coordinates(ad) > 40              # was a 5-vertex box


def test_country_without_a_polygon_is_named():
    with pytest.raises(EngineFailure) as e:
        geo.country_geometries(pl.DataFrame({"country_iso": ["SG", "XX"]}))
    assert e.value.code == "CORE.REFDATA.GEOMETRY_MISSING" and "XX" in e.value.message


def test_sea_mask_known_answers():
    # Paris, the Gulf of Guinea at (0, 0), Grand Cayman
    assert landmask.at_sea(np.array([48.85, 0.0, 19.3]), np.array([2.35, 0.0, -81.25])).tolist() == [False, True, False]


def test_sea_check_can_fail():
    sites = pl.DataFrame({"legal_country_iso": ["KY"] * 10, "lat_deg": [19.0] * 9 + [19.3],
                          "lon_deg": [-81.0] * 9 + [-81.25]})          # 9 in the Caribbean sea
    for preset, verdict in (("dev", "FAIL"), ("tiny", "WARN")):
        chk = Checks("1B.S9")
        m = landmask.gate(sites, {"max_share": 0.005, "severity": {"tiny": "warn", "dev": "fail", "full": "fail"}},
                          preset, chk)
        assert m["value"] == pytest.approx(0.9) and not m["pass"] and m["by_country"] == {"KY": [9, 10]}
        assert chk.rows[-1]["verdict"] == verdict


# ---------------------------------------------------------------- merchant mix

def test_mix_covers_every_code_once_and_sums_to_one(mcc_codes):
    t = mix.mix_table(_yaml("merchant_mix.yaml"), mcc_codes)
    assert t["mcc"].to_list() == mcc_codes.tolist()
    assert t["weight"].sum() == pytest.approx(1.0, abs=1e-12) and (t["weight"] > 0).all()
    shares = dict(t.group_by("group").agg(pl.col("weight").sum()).iter_rows())
    assert shares["restaurants"] + shares["grocery"] + shares["fuel"] + shares["general_retail"] >= 0.40
    rare = t.filter(pl.col("mcc").is_in([5511, 5521, 5551, 5561, 5571, 5592, 5598, 5599]))
    assert rare["weight"].max() <= 0.0015                   # half the 0.3% corridor: room for noise
    p = dict(zip(t["mcc"].to_list(), t["p_cnp"].to_list()))
    assert min(p[c] for c in (5815, 5816, 5817, 5818, 4722, 4899)) >= 0.8
    assert max(p[c] for c in (5411, 5541, 5542, 5812, 5814)) <= 0.1


@pytest.mark.parametrize("edit, what", [
    (lambda m: m["groups"]["fuel"]["code_weights"].update({5411: 1.0}), "is in groups"),
    (lambda m: m["groups"]["fuel"]["code_weights"].update({1234: 1.0}), "1234"),
    (lambda m: m["groups"]["restaurants"].update(share=0.9), "sum to"),
])
def test_bad_mix_is_named(mcc_codes, edit, what):
    m = copy.deepcopy(_yaml("merchant_mix.yaml"))
    edit(m)
    with pytest.raises(EngineFailure) as e:
        mix.mix_table(m, mcc_codes)
    assert e.value.code == "1A.S0.MIX_INVALID" and what in e.value.message


# ---------------------------------------------------------------- card market

def test_card_use_known_answers():
    a = _yaml("card_market.yaml")["card_use_anchors"]
    got = mix.card_use(np.array([500.0, 1000.0, 2000.0, 4000.0, 50000.0, 200000.0]), a)
    assert got[[0, 1, 3, 4, 5]].tolist() == pytest.approx([0.05, 0.05, 0.20, 0.90, 0.90])
    assert got[2] == pytest.approx(0.05 + 0.15 * np.log(2) / np.log(4))      # linear in log GDP


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(200, 300000), min_size=2, max_size=20))
def test_card_use_is_monotone(g):
    g = np.sort(np.array(g))
    assert np.all(np.diff(mix.card_use(g, _yaml("card_market.yaml")["card_use_anchors"])) >= 0)


def test_card_market_keeps_tax_havens_small(world_a):
    from engine.core import datasets
    cref = datasets.load(world_a.results, "country_ref", verify=False)
    w = mix.card_market_weights(cref, _yaml("card_market.yaml"))
    share = dict(zip(cref["country_iso"].to_list(), (w / w.sum()).tolist()))
    pop = dict(zip(cref["country_iso"].to_list(), (cref["population"] / cref["population"].sum()).to_list()))
    cm = _yaml("card_market.yaml")
    cap_head = cm["gdp_pc_cap_usd"] * 0.90 / (w.sum() / cref["population"].sum())   # weight per head at the cap
    for iso in ("KY", "BM", "LU", "MC", "LI"):          # capped GDP: at most the cap's weight per head
        assert share[iso] / pop[iso] <= cap_head * (1 + 1e-9), iso
    assert share["US"] > share["CN"] > share["IN"] > share["KY"]


def test_spearman_known_answers():
    x = np.arange(10.0)
    assert mix.spearman(x, x ** 3) == pytest.approx(1.0)
    assert mix.spearman(x, -x) == pytest.approx(-1.0)
    assert mix.spearman(np.array([1.0, 1.0, 2.0]), np.array([1.0, 2.0, 3.0])) == pytest.approx(np.sqrt(3) / 2)
    assert np.isnan(mix.spearman(np.ones(4), x[:4]))


# ---------------------------------------------------------------- 1A corridors

def _figures():
    return {"core_group_share": 0.5, "max_rare_mcc_share": 0.001, "max_rare_mcc": 5511, "digital_cnp_share": 0.95,
            "digital_merchants": 60, "spearman_outlets_vs_card_market": 0.9, "countries_with_outlets": 90,
            "max_small_country_ratio": 1.0, "max_small_country": "MT", "max_small_country_outlets": 2,
            "max_small_country_raw_ratio": 1.0, "small_countries_ratio": 0.5}


@pytest.mark.parametrize("key, bad", [("core_group_share", 0.2), ("max_rare_mcc_share", 0.01),
                                      ("digital_cnp_share", 0.17), ("spearman_outlets_vs_card_market", 0.54),
                                      ("max_small_country_ratio", 800.0), ("small_countries_ratio", 9.0),
                                      ("digital_cnp_share", float("nan"))])
def test_realism_corridor_can_fail(key, bad):
    rz = _yaml("validation.yaml")["realism"]
    chk = Checks("1A.S9")
    realism.gate(_figures(), rz, "dev", chk, [])
    assert not chk.failed
    f = _figures() | {key: bad}
    for preset, verdict in (("dev", "FAIL"), ("full", "FAIL"), ("tiny", "WARN")):
        chk, rows = Checks("1A.S9"), []
        realism.gate(f, rz, preset, chk, rows)
        bad_rows = [r for r in chk.rows if r["verdict"] != "PASS"]
        assert len(bad_rows) == 1 and bad_rows[0]["verdict"] == verdict
        assert key.replace("_share", "") in bad_rows[0]["check"] or key in bad_rows[0]["check"]


def test_tiny_world_reports_the_realism_corridors(world_a):
    rep = json.loads((world_a.results / "1A" / "validation" / "validation_report.json").read_text())
    rows = rep["checks"] if isinstance(rep, dict) else rep
    names = {r["check"] for r in rows}
    assert {"corridor_core_group_share", "corridor_spearman_outlets_vs_card_market"} <= names
    rep = json.loads((world_a.results / "1B" / "validation" / "validation_report.json").read_text())
    rows = rep["checks"] if isinstance(rep, dict) else rep
    sea = [r for r in rows if r["check"] == "corridor_max_sites_at_sea_share"]
    assert sea and sea[0]["figure"] <= 0.02
