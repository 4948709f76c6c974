"""Segments 2A and 2B on the tiny world: civil time for every site, the routing fabric, gates."""
from __future__ import annotations

import json
import shutil

import numpy as np
import polars as pl
import pytest
import yaml

from engine.core import civil_time, datasets, hashgate, tzcache
from engine.core.errors import EngineFailure
from engine.seg2A import s0_gate as gate_2A
from engine.seg2A import s3_tz_cache
from engine.seg2A.tz_tables import zone_tables
from engine.seg2B import s0_gate as gate_2B

KEY = ["merchant_id", "legal_country_iso", "site_order"]


def _read(ctx, ds):
    return datasets.load(ctx.results, ds, verify=False)


def test_every_site_has_one_valid_tzid_in_its_country(world_a):
    st, sl = _read(world_a, "site_timezones"), _read(world_a, "site_locations")
    assert st.select(KEY).sort(KEY).equals(sl.select(KEY).sort(KEY))
    tables = zone_tables()
    assert st["tzid"].is_in(sorted(tables.zones)).all()
    member = tables.member_mask(st["tzid"].to_numpy(), st["legal_country_iso"].to_numpy())
    assert (member | (st["tzid_source"] == "override").to_numpy()).all()
    rep = json.loads((world_a.results / "2A/S2/run_report.json").read_text())["counts"]
    assert rep["sites"] == st.height and rep["polygon"] + rep["override"] + rep["country_fallback"] == st.height


def test_cache_agrees_with_zoneinfo_for_used_zones(world_a):
    st = _read(world_a, "site_timezones")
    cache = civil_time.flatten_cache(_read(world_a, "tz_timetable_cache").to_arrow())
    used = sorted(st["tzid"].unique())
    idx = cache.tz_index(used)
    rng = np.random.default_rng(3)
    ts = rng.integers(1_767_225_600, 1_830_297_600, size=len(used) * 200)   # 2026-01-01 .. 2028-01-01
    tz = np.repeat(idx, 200)
    local = civil_time.utc_to_local(ts * 1_000_000, tz, cache)
    import datetime as dt
    for k in range(0, len(ts), 997):
        zi = tzcache.wheel_zoneinfo(used[k // 200])
        off = dt.datetime.fromtimestamp(int(ts[k]), dt.UTC).astimezone(zi).utcoffset().total_seconds()
        assert local[k] - ts[k] * 1_000_000 == int(off) * 1_000_000


def test_cache_manifest_records_the_tzdata_and_horizon(world_a):
    man = json.loads((world_a.results / "2A/tz_timetable_cache/_manifest.json").read_text())["tz_cache"]
    import tzdata
    assert man["tzdb_release_tag"] == tzdata.IANA_VERSION
    assert man["horizon_start_utc"] <= "2026-03-01" and man["horizon_end_utc"] >= "2026-03-05"


def test_short_cache_horizon_is_refused_and_nothing_published(world_copy, config_copy):
    p = config_copy / "config/2A/tz_policy.yaml"
    doc = yaml.safe_load(p.read_text())
    doc["horizon"] = {"start": "2024-01-01", "end": "2026-03-02"}         # ends inside the tiny horizon
    p.write_text(yaml.safe_dump(doc))
    shutil.rmtree(world_copy.results / "2A/tz_timetable_cache")
    ctx = world_copy.for_state("2A.S3")
    ctx.io.inputs["policy_2A_tz_policy"] = p
    with pytest.raises(EngineFailure) as e:
        s3_tz_cache.run(ctx)
    assert e.value.code == "2A.S3.TZ_CACHE_HORIZON_SHORT"
    assert not (world_copy.results / "2A/tz_timetable_cache").exists()


def test_2A_gate_refuses_tampered_1B(world_copy):
    f = world_copy.results / "1B/validation/realism_metrics.json"
    f.write_bytes(f.read_bytes() + b" ")
    with pytest.raises(EngineFailure) as e:
        gate_2A.run(world_copy.for_state("2A.S0"))
    assert e.value.code == "2A.S0.UPSTREAM_HASHGATE_DIGEST_MISMATCH"


def test_2B_gate_refuses_missing_2A_flag(world_copy):
    (world_copy.results / "2A/_passed.flag").unlink()
    with pytest.raises(EngineFailure) as e:
        gate_2B.run(world_copy.for_state("2B.S0"))
    assert e.value.code == "2B.S0.UPSTREAM_FLAG_MISSING"


def test_m_q_on_the_grid_and_alias_exact(world_a):
    sw = _read(world_a, "s1_site_weights")
    sums = sw.group_by("merchant_id").agg(pl.col("m_q").cast(pl.Int64).sum())
    assert (sums["m_q"] == 1 << 24).all()
    rep = json.loads((world_a.results / "2B/validation/validation_report.json").read_text())
    verdict = {c["check"]: c["verdict"] for c in rep["checks"]}
    for check in ("alias_decode_exact", "p_group_sums_to_one", "replay_s1_site_weights", "replay_s3_day_effects",
                  "routed_site_in_merchant_and_group", "mean_gamma"):
        assert verdict[check] == "PASS", check


def test_segment_flags_verify(world_a):
    for seg in ("2A", "2B"):
        assert hashgate.verify(world_a.results / seg, "USER.S0")
