"""Segment 1B on the tiny world: conservation, geometry, density, gate and bad input."""
from __future__ import annotations

import json

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import shapely
from conftest import reseal

from engine.core import contracts, datasets, hashgate
from engine.core.errors import EngineFailure
from engine.seg1B import common, s0_gate, s3_requirements, s4_alloc, s5_assign, s9_validation

KEY = ["merchant_id", "legal_country_iso", "site_order"]
PAIR = ["merchant_id", "legal_country_iso"]


def _read(ctx, ds):
    return datasets.load(ctx.results, ds, verify=False)


def test_every_outlet_placed_exactly_once(world_a):
    cat = _read(world_a, "outlet_catalogue").select(*KEY, "site_id")
    sl = _read(world_a, "site_locations")
    assert sl.height == cat.height
    assert sl.select(KEY).join(cat.select(KEY), on=KEY, how="anti").height == 0
    assert sl.select(KEY).n_unique() == sl.height
    assert sl.join(cat, on=KEY)["site_id"].equals(sl["site_id"])
    assert sl.select(KEY).equals(sl.select(KEY).sort(KEY))      # writer sort


def test_plan_conserves_per_pair(world_a):
    req = _read(world_a, "s3_requirements")
    plan = _read(world_a, "s4_alloc_plan").group_by(PAIR).agg(pl.col("n_sites_tile").sum())
    s5 = _read(world_a, "s5_site_tile_assignment").group_by(PAIR).len()
    j = req.join(plan, on=PAIR).join(s5, on=PAIR)
    assert j.height == req.height
    assert (j["n_sites"] == j["n_sites_tile"]).all() and (j["n_sites"] == j["len"]).all()
    rep = json.loads((world_a.results / "1B/S4/run_report.json").read_text())
    assert rep["alloc_sum_equals_requirements"] is True


def test_tile_weights_exact_per_country(world_a):
    w = _read(world_a, "tile_weights")
    s = w.group_by("country_iso").agg(pl.col("weight_fp").sum())
    assert (s["weight_fp"] == 10 ** int(w["dp"][0])).all()
    assert w.select("country_iso", "tile_id").equals(_read(world_a, "tile_index").select("country_iso", "tile_id"))


def test_every_site_inside_its_country_and_tile(world_a):
    geo = common.load_geometry(world_a.for_state("1B.S9"), "TEST.S0")
    gmap = dict(zip(geo["country_iso"], geo["geom"]))
    sl = _read(world_a, "site_locations")
    for (iso,), part in sl.group_by(["legal_country_iso"]):
        assert shapely.intersects_xy(gmap[iso], part["lon_deg"].to_numpy(), part["lat_deg"].to_numpy()).all(), iso
    s7 = _read(world_a, "s7_site_synthesis").join(
        _read(world_a, "tile_bounds").rename({"country_iso": "legal_country_iso"}), on=["legal_country_iso", "tile_id"])
    assert ((s7["lon_deg"] >= s7["min_lon_deg"] - 1e-9) & (s7["lon_deg"] <= s7["max_lon_deg"] + 1e-9)
            & (s7["lat_deg"] >= s7["min_lat_deg"] - 1e-9) & (s7["lat_deg"] <= s7["max_lat_deg"] + 1e-9)).all()


def test_sites_cluster_where_people_live(world_a):
    """5,000 outlets of one merchant in Australia: the Sydney area is far denser than the Outback."""
    req = pl.DataFrame({"merchant_id": pl.Series([10**9], dtype=pl.UInt64), "legal_country_iso": ["AU"],
                        "n_sites": pl.Series([5000], dtype=pl.Int64)})
    plan, _, _ = s4_alloc.allocate(world_a.for_state("1B.S4"), req, _read(world_a, "tile_weights"), sampled=True)
    sites, _, _ = s5_assign.assign(world_a.for_state("1B.S5"), plan)
    pts = sites.join(_read(world_a, "tile_index").rename({"country_iso": "legal_country_iso"}),
                     on=["legal_country_iso", "tile_id"])
    assert pts.height == 5000

    def density(lat0, lat1, lon0, lon1):
        box = pts.filter(pl.col("centroid_lat_deg").is_between(lat0, lat1) & pl.col("centroid_lon_deg").is_between(lon0, lon1))
        return box.height / ((lat1 - lat0) * (lon1 - lon0))
    sydney, outback = density(-34.5, -33.0, 150.0, 151.5), density(-27.0, -23.0, 125.0, 130.0)
    assert sydney > 20 * max(outback, 1.0 / 20), (sydney, outback)


def test_sampled_remainder_spreads_small_merchants(world_a):
    """lrr would put every one-outlet merchant of a country on the same tile; sampled does not."""
    req = pl.DataFrame({"merchant_id": pl.Series(range(1, 201), dtype=pl.UInt64), "legal_country_iso": ["DE"] * 200,
                        "n_sites": pl.Series([1] * 200, dtype=pl.Int64)})
    w = _read(world_a, "tile_weights")
    lrr, _, end_lrr = s4_alloc.allocate(world_a.for_state("1B.S4"), req, w, sampled=False)
    smp, _, end_smp = s4_alloc.allocate(world_a.for_state("1B.S4"), req, w, sampled=True)
    assert lrr["tile_id"].n_unique() == 1 and end_lrr[:, 3].sum() == 0
    assert smp["tile_id"].n_unique() > 50 and end_smp[:, 3].sum() == 200     # one draw per remainder unit


def test_rng_budgets_in_traces(world_a):
    n = _read(world_a, "site_locations").height
    t5 = json.loads((world_a.results / "1B/rng/S5.trace.json").read_text())["1B.site_tile_assign"]
    assert t5["draws"] == t5["blocks"] == n
    t6 = json.loads((world_a.results / "1B/rng/S6.trace.json").read_text())["1B.in_cell_jitter"]
    attempts = int(_read(world_a, "s6_site_jitter")["attempts"].sum())
    assert t6["events"] == n and t6["blocks"] == attempts and t6["draws"] == 2 * attempts


def test_1B_flag_verifies(world_a):
    hashgate.verify(world_a.results / "1B", "2A.S0")


# ---------------------------------------------------------------- bad input

def _clear_1B(ctx):
    import shutil
    shutil.rmtree(ctx.results / "1B", ignore_errors=True)


def test_gate_refuses_missing_1A_flag(world_copy):
    _clear_1B(world_copy)
    (world_copy.results / "1A" / "_passed.flag").unlink()
    with pytest.raises(EngineFailure) as e:
        s0_gate.run(world_copy.for_state("1B.S0"))
    assert e.value.code == "1B.S0.UPSTREAM_FLAG_MISSING"
    assert not (world_copy.results / "1B").exists()


def test_gate_refuses_tampered_1A_flag(world_copy):
    _clear_1B(world_copy)
    (world_copy.results / "1A" / "_passed.flag").write_text("sha256_hex = " + "f" * 64 + "\n")
    with pytest.raises(EngineFailure) as e:
        s0_gate.run(world_copy.for_state("1B.S0"))
    assert e.value.code == "1B.S0.UPSTREAM_HASHGATE_DIGEST_MISMATCH"
    assert not (world_copy.results / "1B").exists()


def test_gate_refuses_tampered_catalogue(world_copy):
    _clear_1B(world_copy)
    f = world_copy.results / "1A/outlet_catalogue/part-00000.parquet"
    t = pq.read_table(f)
    pq.write_table(t.slice(1), f)                      # one outlet fewer, 1A's flag unchanged
    with pytest.raises(EngineFailure) as e:
        s0_gate.run(world_copy.for_state("1B.S0"))
    assert e.value.code == "1B.S0.UPSTREAM_HASHGATE_DIGEST_MISMATCH"


def test_weights_missing_a_country_is_named(world_copy):
    target = world_copy.results / "1B" / "tile_weights"
    t = pq.read_table(target)
    iso = _read(world_copy, "s3_requirements")["legal_country_iso"][0]
    keep = pa.compute.not_equal(t.column("country_iso").cast(pa.string()), iso)
    pq.write_table(t.filter(keep), target / "part-00000.parquet")
    reseal(target)
    import shutil
    shutil.rmtree(world_copy.results / "1B" / "s3_requirements")
    with pytest.raises(EngineFailure) as e:
        s3_requirements.run(world_copy.for_state("1B.S3"))
    assert e.value.code == "1B.S3.MISSING_WEIGHTS" and iso in e.value.line()
    assert not (world_copy.results / "1B" / "s3_requirements").exists()


def test_validation_fails_on_a_moved_site(world_copy):
    target = world_copy.results / "1B" / "s7_site_synthesis"
    t = pq.read_table(target)
    lat = t.column("lat_deg").to_numpy().copy()
    lat[0] += 3.0                                       # off its tile
    t = t.set_column(t.column_names.index("lat_deg"), "lat_deg", pa.array(lat))
    pq.write_table(t, target / "part-00000.parquet")
    reseal(target)
    (world_copy.results / "1B" / "_passed.flag").unlink()
    with pytest.raises(EngineFailure) as e:
        s9_validation.run(world_copy.for_state("1B.S9"))
    assert e.value.code == "1B.S9.VALIDATION_FAILED" and "points_inside_tile" in e.value.message
    assert not (world_copy.results / "1B" / "_passed.flag").exists()


@pytest.mark.parametrize("column", ["delta_lat_deg", "delta_lon_deg"])
def test_jitter_replay_checks_both_coordinates(world_copy, column):
    """1B.S9 replays S6: a jitter record whose latitude (or longitude) offset is off fails it."""
    target = world_copy.results / "1B" / "s6_site_jitter"
    t = pq.read_table(target)
    v = t.column(column).to_numpy().copy()
    v[0] += 1e-6
    t = t.set_column(t.column_names.index(column), column, pa.array(v))
    pq.write_table(t, target / "part-00000.parquet")
    reseal(target)
    (world_copy.results / "1B" / "_passed.flag").unlink()
    with pytest.raises(EngineFailure) as e:
        s9_validation.run(world_copy.for_state("1B.S9"))
    assert e.value.code == "1B.S9.VALIDATION_FAILED" and "replay_s6_jitter" in e.value.message


def test_site_locations_readable_by_duckdb(world_a):
    duckdb = pytest.importorskip("duckdb")
    path = contracts.dataset_path(world_a.results, "site_locations") / "*.parquet"
    rows = duckdb.sql(f"SELECT count(*), min(lat_deg) >= -90 FROM '{path}'").fetchall()[0]
    assert rows[0] == _read(world_a, "site_locations").height and rows[1]


def test_lat_lon_ranges(world_a):
    sl = _read(world_a, "site_locations")
    assert np.all(np.abs(sl["lat_deg"].to_numpy()) <= 90) and np.all(np.abs(sl["lon_deg"].to_numpy()) <= 180)


def test_alloc_refuses_requirement_without_weights(world_a):
    req = pl.DataFrame({"merchant_id": pl.Series([1], dtype=pl.UInt64), "legal_country_iso": ["ZZ"],
                        "n_sites": pl.Series([3], dtype=pl.Int64)})
    with pytest.raises(EngineFailure) as e:
        s4_alloc.allocate(world_a.for_state("1B.S4"), req, _read(world_a, "tile_weights"), sampled=True)
    assert e.value.code == "1B.S4.MISSING_TILE_WEIGHTS" and "ZZ" in e.value.line()
