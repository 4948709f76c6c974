"""Segment 5B on the tiny world: arrivals from real upstream data, checked against sources 5B did not
write (5A's λ rows, 2A's site time zones, 3B's edges, zoneinfo); gates, failures, determinism."""
from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pyarrow as pa
import pytest
from conftest import build, reseal

from engine.core import datasets, hashgate, ids
from engine.core.errors import EngineFailure
from engine.core.publish import DatasetWriter
from engine.core.tzcache import wheel_zoneinfo
from engine.seg5B import s5_validation, states

KEY = ["merchant_id", "zone_representation", "channel_group"]


def _read(ctx, ds):
    return datasets.load(ctx.results, ds, verify=False)


@pytest.fixture(scope="module")
def events(world_a) -> pl.DataFrame:
    return _read(world_a, "arrival_events_5B")


@pytest.fixture(scope="module")
def dst_world(tmp_path_factory):
    """A tiny world whose 2-day horizon starts 2026-03-28: Europe's clocks change on 03-29 01:00 UTC."""
    return build(tmp_path_factory.mktemp("dst") / "results", segments=("1A", "1B", "2A", "2B", "3A", "3B", "5A", "5B"),
                 world={"horizon_start_utc": "2026-03-28T00:00:00Z"})


def test_validation_passed_and_flag_verifies(world_a):
    rep = json.loads((world_a.results / "5B/validation/validation_report.json").read_text())
    verdict = {c["check"]: c["verdict"] for c in rep["checks"]}
    assert not [k for k, v in verdict.items() if v == "FAIL"]
    for check in ("count_conservation_baseline_v1", "civil_time_mismatch_baseline_v1",
                  "civil_time_vs_zoneinfo_baseline_v1", "site_outside_zone_baseline_v1",
                  "rng_budget_arrival_site_pick", "rng_budget_bucket_count", "rng_budget_latent_vector"):
        assert verdict[check] == "PASS", check
    assert hashgate.verify(world_a.results / "5B", "USER.S0")


def test_counts_conserved_exactly_from_s3_to_s4(world_a, events):
    s3 = _read(world_a, "s3_bucket_counts_5B").filter(pl.col("count_N") > 0)
    got = events.group_by(*KEY, "bucket_index").len()
    j = s3.join(got, on=[*KEY, "bucket_index"], how="full", coalesce=True)
    assert j["count_N"].null_count() == 0 and j["len"].null_count() == 0           # anti-joins both ways
    assert (j["count_N"] == j["len"]).all()
    assert events.height == int(s3["count_N"].sum()) > 1000


def test_s3_rows_are_exactly_the_5A_lambda_rows(world_a):
    lam = _read(world_a, "merchant_zone_scenario_utc_5A").rename({"utc_horizon_bucket_index": "bucket_index"})
    s3 = _read(world_a, "s3_bucket_counts_5B")
    j = lam.join(s3, on=["scenario_id", *KEY, "bucket_index"], how="full", coalesce=True)
    assert j.height == lam.height == s3.height
    assert (j["lambda_utc_scenario"] == j["lambda_baseline"]).all()
    # zero-λ rule: no event where the realised λ is zero
    assert s3.filter(pl.col("lambda_realised") <= 1e-9)["count_N"].sum() == 0


def test_every_event_inside_its_half_open_bucket(world_a, events):
    grid = _read(world_a, "s1_time_grid_5B")
    e = events.join(grid.select("scenario_id", "bucket_index", "bucket_start_utc", "bucket_end_utc"),
                    on=["scenario_id", "bucket_index"], how="left")
    assert ((e["ts_utc"] >= e["bucket_start_utc"]) & (e["ts_utc"] < e["bucket_end_utc"])).all()


def _zoneinfo_local(ts: pl.Series, tz: pl.Series) -> list:
    return [t.astimezone(wheel_zoneinfo(z, "TEST")).replace(tzinfo=None) for t, z in zip(ts, tz)]


def test_civil_time_of_every_event_equals_zoneinfo(events):
    assert _zoneinfo_local(events["ts_utc"], events["tzid_primary"]) == events["ts_local_primary"].to_list()
    v = events.filter(pl.col("is_virtual"))
    assert v.height > 0
    assert _zoneinfo_local(v["ts_utc"], v["tzid_settlement"]) == v["ts_local_settlement"].to_list()
    assert (v["tzid_operational"] == v["tzid_primary"]).all()                    # virtual_primary_clock: operational


def test_dst_change_inside_the_horizon_has_zero_mismatches(dst_world):
    ev = _read(dst_world, "arrival_events_5B")
    change = dt.datetime(2026, 3, 29, 1, tzinfo=dt.UTC)
    eu = ev.filter(pl.col("tzid_primary").str.starts_with("Europe/"))
    before, after = eu.filter(pl.col("ts_utc") < change), eu.filter(pl.col("ts_utc") >= change)
    assert before.height > 0 and after.height > 0                     # events on both sides of the change
    assert _zoneinfo_local(ev["ts_utc"], ev["tzid_primary"]) == ev["ts_local_primary"].to_list()
    # the offset really moved: a Europe/Paris-like zone is +1h before, +2h after
    off = (after["ts_local_primary"] - after["ts_utc"].dt.replace_time_zone(None)).dt.total_hours()
    off_b = (before["ts_local_primary"] - before["ts_utc"].dt.replace_time_zone(None)).dt.total_hours()
    zones = set(after["tzid_primary"]) & set(before["tzid_primary"])
    z = sorted(zones)[0]
    h = dt.timedelta(hours=1)
    assert (change + h).astimezone(ZoneInfo(z)).utcoffset() != (change - h).astimezone(ZoneInfo(z)).utcoffset()
    assert off.filter(after["tzid_primary"] == z).unique().to_list() != \
        off_b.filter(before["tzid_primary"] == z).unique().to_list()
    rep = json.loads((dst_world.results / "5B/validation/validation_report.json").read_text())
    assert {c["check"]: c["verdict"] for c in rep["checks"]}["civil_time_vs_zoneinfo_baseline_v1"] == "PASS"


def test_sites_belong_to_the_merchant_in_the_lambda_rows_zone(world_a, events):
    st = _read(world_a, "site_timezones")
    st = st.with_columns(pl.Series("site_id", ids.site_ids(st["merchant_id"].to_numpy(),
                                                            st["legal_country_iso"].cast(pl.String),
                                                            st["site_order"].to_numpy())))
    phys = events.filter(~pl.col("is_virtual"))
    assert phys["site_id"].null_count() == 0 and phys["edge_id"].null_count() == phys.height
    j = phys.join(st.select("merchant_id", "site_id", pl.col("tzid").alias("site_tz")),
                  on=["merchant_id", "site_id"], how="left")
    assert j["site_tz"].null_count() == 0                                   # a site of this merchant
    fallback = j.filter(pl.col("site_tz") != pl.col("zone_representation")).height
    rep = json.loads((world_a.results / "5B/validation/metrics.json").read_text())
    assert fallback == rep["scenarios"]["baseline_v1"]["fallback"]         # only the counted fallback leaves the zone
    assert (j["tzid_primary"] == j["site_tz"]).all()


def test_edges_belong_to_the_merchant(world_a, events):
    edges = _read(world_a, "edge_catalogue_3B").select("merchant_id", "edge_id", "tzid_operational")
    v = events.filter(pl.col("is_virtual"))
    j = v.join(edges, on=["merchant_id", "edge_id"], how="left", suffix="_cat")
    assert v.height and j["tzid_operational_cat"].null_count() == 0
    assert (j["tzid_operational"] == j["tzid_operational_cat"]).all()
    modes = _read(world_a, "virtual_classification_3B").select("merchant_id", "virtual_mode")
    m = events.join(modes, on="merchant_id", how="left")
    assert m.filter((pl.col("virtual_mode") == "NON_VIRTUAL") & pl.col("is_virtual")).height == 0
    assert m.filter((pl.col("virtual_mode") == "VIRTUAL_ONLY") & ~pl.col("is_virtual")).height == 0


def test_arrival_seq_is_1_to_n_per_merchant_in_time_order(events):
    g = events.group_by("merchant_id").agg(pl.len(), pl.col("arrival_seq").min().alias("lo"),
                                           pl.col("arrival_seq").max().alias("hi"), pl.col("arrival_seq").n_unique())
    assert (g["lo"] == 1).all() and (g["hi"] == g["len"]).all() and (g["arrival_seq"] == g["len"]).all()
    s = events.sort("merchant_id", "arrival_seq")
    assert s.group_by("merchant_id").agg((pl.col("ts_utc").diff().dt.total_microseconds() >= 0).all())["ts_utc"].all()


def test_two_worlds_identical_bytes(world_a, world_b):
    def files(r: Path):
        return {p.relative_to(r).as_posix(): p.read_bytes() for p in sorted((r / "5B").rglob("*"))
                if p.is_file() and p.name != "run_report.json"}
    a, b = files(world_a.results), files(world_b.results)
    assert a.keys() == b.keys() and any("arrival_events" in k for k in a)
    assert [k for k in a if a[k] != b[k]] == []


# ---------------------------------------------------------------- failures: named, nothing published

def test_gate_refuses_a_tampered_5A_flag(world_copy):
    f = world_copy.results / "5A/_passed.flag"
    f.write_text("sha256_hex = " + "0" * 64 + "\n")
    with pytest.raises(EngineFailure) as e:
        states.s0_gate(world_copy.for_state("5B.S0"))
    assert e.value.code == "5B.S0.UPSTREAM_HASHGATE_DIGEST_MISMATCH" and "5A" in e.value.line()


def test_gate_refuses_a_missing_2B_flag(world_copy):
    (world_copy.results / "2B/_passed.flag").unlink()
    with pytest.raises(EngineFailure) as e:
        states.s0_gate(world_copy.for_state("5B.S0"))
    assert e.value.code == "5B.S0.UPSTREAM_FLAG_MISSING" and "2B" in e.value.line()


def _arrivals_files(results: Path) -> dict[str, bytes]:
    d = results / "5B/arrival_events"
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_s4_killed_midway_leaves_nothing_and_rerun_gives_same_bytes(world_copy, world_a, monkeypatch):
    shutil.rmtree(world_copy.results / "5B/arrival_events")
    real_write = DatasetWriter.write
    calls = {"n": 0}

    def dying_write(self, batch, subdir=""):
        if self.dataset_id == "arrival_events_5B":
            calls["n"] += 1
            if calls["n"] == 3:
                raise KeyboardInterrupt("killed")
        return real_write(self, batch, subdir)
    real_pol = states.policies

    def small_batches(ctx, state, classes=None):
        p = real_pol(ctx, state, classes)
        p["arrival_time_placement_policy_5B"]["batch_target_arrivals"] = 2000      # many batches
        return p
    monkeypatch.setattr(DatasetWriter, "write", dying_write)
    monkeypatch.setattr(states, "policies", small_batches)
    with pytest.raises(KeyboardInterrupt):
        states.s4_arrivals(world_copy.for_state("5B.S4"))
    d = world_copy.results / "5B/arrival_events"
    assert not (d / "_manifest.json").exists() and not list(d.rglob("*.parquet")) if d.exists() else True
    monkeypatch.setattr(DatasetWriter, "write", real_write)
    states.s4_arrivals(world_copy.for_state("5B.S4"))                   # batch size is a tuning knob only
    assert _arrivals_files(world_copy.results) == _arrivals_files(world_a.results)
    assert not [p for p in (world_copy.results / "5B").iterdir() if p.name.startswith(".")]


def test_corrupted_s3_parquet_is_refused_and_nothing_published(world_copy):
    part = next((world_copy.results / "5B/s3_bucket_counts").rglob("*.parquet"))
    part.write_bytes(part.read_bytes()[:200] + b"\0" * (part.stat().st_size - 200))
    shutil.rmtree(world_copy.results / "5B/arrival_events")
    with pytest.raises(EngineFailure) as e:
        states.s4_arrivals(world_copy.for_state("5B.S4"))
    assert e.value.code == "5B.S4.INPUT_CORRUPT" and "s3_bucket_counts" in e.value.line()
    assert not (world_copy.results / "5B/arrival_events/_manifest.json").exists()


def test_validation_fails_closed_on_a_moved_arrival(world_copy):
    """An arrival moved to another bucket (re-sealed, so only S5's checks can see it): no flag."""

    d = world_copy.results / "5B/arrival_events"
    f = next(d.rglob("*.parquet"))
    import pyarrow.parquet as pq
    t = pq.read_table(f)
    ts = t.column("ts_utc").to_pylist()
    ts[0] = ts[0] + dt.timedelta(hours=5)
    import pyarrow as pa
    t = t.set_column(t.schema.get_field_index("ts_utc"), t.schema.field("ts_utc"),
                     pa.array(ts, t.schema.field("ts_utc").type))
    pq.write_table(t, f)
    reseal(d)
    with pytest.raises(EngineFailure) as e:
        s5_validation.run(world_copy.for_state("5B.S5"))
    assert e.value.code == "5B.S5.VALIDATION_FAILED" and "ts_outside_bucket" in e.value.line()
    assert not (world_copy.results / "5B/_passed.flag").exists()


def test_edge_blob_tampered_is_refused(world_copy):
    f = world_copy.results / "3B/edge_alias_blob/edge_alias_blob_3B.bin"
    b = bytearray(f.read_bytes())
    b[-1] ^= 0x01
    f.write_bytes(bytes(b))
    with pytest.raises(EngineFailure) as e:
        states.s4_arrivals(world_copy.for_state("5B.S4"))
    assert e.value.code == "5B.S4.EDGE_BLOB_DIGEST_MISMATCH"


def _first_key(t):
    """Mask of the rows of the λ table's first (merchant, zone, channel) key."""
    import pyarrow.compute as pc
    m = None
    for c in KEY:
        eq = pc.equal(t.column(c).cast(t.schema.field(c).type), t.column(c)[0])
        m = eq if m is None else pc.and_(m, eq)
    return m


def _bad_lambda(t, how: str):
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    first = _first_key(t)
    if how == "drop_row":                       # the first key misses one bucket
        return pa.concat_tables([t.slice(0, 3), t.slice(4)])
    if how == "swap_rows":
        idx = np.arange(t.num_rows)
        idx[[0, 1]] = [1, 0]
        return t.take(idx)
    if how == "drop_key":                       # a key of S1's domain without λ rows
        return t.filter(pc.invert(first))
    if how == "unknown_merchant":               # a key S1's domain does not hold
        mid = np.where(first.to_numpy(zero_copy_only=False), np.uint64(0), t.column("merchant_id").to_numpy())
        return t.set_column(t.schema.get_field_index("merchant_id"), "merchant_id", pa.array(mid, pa.uint64()))
    if how == "bucket_outside":                 # the first key's last bucket moved past the grid
        b = t.column("utc_horizon_bucket_index").to_numpy().copy()
        n = int(pc.sum(first.cast(pa.int64())).as_py())
        b[n - 1] = 10_000
        return t.set_column(t.schema.get_field_index("utc_horizon_bucket_index"), "utc_horizon_bucket_index",
                            pa.array(b, t.schema.field("utc_horizon_bucket_index").type))
    raise ValueError(how)


@pytest.mark.parametrize("how, code", [("drop_row", "TIME_GRID_INCOMPLETE"), ("swap_rows", "DOMAIN_ALIGN_FAILED"),
                                       ("drop_key", "DOMAIN_ALIGN_FAILED"), ("unknown_merchant", "DOMAIN_ALIGN_FAILED"),
                                       ("bucket_outside", "TIME_GRID_INCOMPLETE")])
def test_bad_5A_lambda_rows_are_refused_by_s3_and_nothing_published(world_copy, monkeypatch, how, code):
    """5A's λ surface read with a bad row stream (handed in past the HashGate, which would refuse a
    tampered file first): S3, which streams it one row group at a time, names the fault and publishes
    nothing."""
    real = datasets.batches

    def batches(ctx, dataset_id, *a, **kw):
        tables = list(real(ctx, dataset_id, *a, **kw))
        if dataset_id == "merchant_zone_scenario_utc_5A":
            t = _bad_lambda(pa.concat_tables(tables), how)
            tables = [t.slice(0, 40), t.slice(40)]          # two row groups: faults across their seam too
        yield from tables
    monkeypatch.setattr(states.datasets, "batches", batches)
    shutil.rmtree(world_copy.results / "5B/s3_bucket_counts")
    with pytest.raises(EngineFailure) as e:
        states.s3_counts(world_copy.for_state("5B.S3"))
    assert e.value.code == f"5B.S3.{code}"
    assert not (world_copy.results / "5B/s3_bucket_counts").exists()


def test_s3_gives_the_same_bytes_whatever_the_lambda_row_groups(world_copy, world_a, monkeypatch):
    """S3 streams 5A's λ row group by row group: cut into row groups of 37 rows (seams inside keys), its
    counts, trace and report are those of the build."""
    real = datasets.batches

    def batches(ctx, dataset_id, *a, **kw):
        for t in real(ctx, dataset_id, *a, **kw):
            if dataset_id == "merchant_zone_scenario_utc_5A":
                yield from (t.slice(i, 37) for i in range(0, t.num_rows, 37))
            else:
                yield t
    monkeypatch.setattr(states.datasets, "batches", batches)
    files = ("5B/s3_bucket_counts", "5B/rng/S3.trace.json", "5B/S3/run_report.json")
    for u in files:
        p = world_copy.results / u
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    states.s3_counts(world_copy.for_state("5B.S3"))
    def read(r: Path) -> dict[str, bytes]:
        return {q.relative_to(r).as_posix(): q.read_bytes() for u in files
                for q in ([r / u] if (r / u).is_file() else sorted(x for x in (r / u).rglob("*") if x.is_file()))}
    a, b = read(world_a.results), read(world_copy.results)
    assert a.keys() == b.keys() and [k for k in a if a[k] != b[k] and not k.endswith("run_report.json")] == []
    rep = [json.loads(r["5B/S3/run_report.json"])["scenarios"] for r in (a, b)]
    assert rep[0] == rep[1] or all(                                # λ sums: added per row group
        abs(rep[0][s][k] - rep[1][s][k]) <= 1e-9 * abs(rep[0][s][k]) for s in rep[0] for k in rep[0][s])
