"""Segment 5A on the tiny world: surfaces from real upstream data, no RNG, gates and policies."""
from __future__ import annotations

import json

import pytest
import yaml

from engine.core import datasets, hashgate, workflow
from engine.core.errors import EngineFailure
from engine.seg5A import states

MZ = ["merchant_id", "zone_representation"]


def _read(ctx, ds):
    return datasets.load(ctx.results, ds, verify=False)


def test_validation_passed_with_every_check(world_a):
    rep = json.loads((world_a.results / "5A/validation/validation_report.json").read_text())
    verdict = {c["check"]: c["verdict"] for c in rep["checks"]}
    for check in ("shapes_sum_to_one", "weekly_totals_equal_volume", "profile_domain_matches_zones",
                  "utc_surface_covers_domain", "lambda_finite_nonnegative", "no_rng_used"):
        assert verdict[check] == "PASS", check
    assert hashgate.verify(world_a.results / "5A", "USER.S0")


def test_surface_rows_and_scale(world_a):
    prof = _read(world_a, "merchant_zone_profile_5A")
    utc = _read(world_a, "merchant_zone_scenario_utc_5A")
    h = world_a.world["horizon_days"] * 24 * 60 // world_a.world["bucket_minutes"]
    assert utc.height == prof.height * h
    assert utc.select(MZ).unique().sort(MZ).equals(prof.select(MZ).unique().sort(MZ))
    total = float(utc["lambda_utc_scenario"].sum())
    assert 3e3 < total < 3e4                       # DESIGN §8: ~1e4 arrivals on tiny


def test_no_rng_trace(world_a):
    assert not list((world_a.results / "5A").glob("rng/*.json"))
    for s in ("S1", "S2", "S3", "S4"):
        rep = json.loads((world_a.results / f"5A/{s}/run_report.json").read_text())
        assert rep["rng"].startswith("none")


def test_gate_refuses_missing_3B_flag(world_copy):
    (world_copy.results / "3B/_passed.flag").unlink()
    with pytest.raises(EngineFailure) as e:
        states.s0_gate(world_copy.for_state("5A.S0"))
    assert e.value.code == "5A.S0.UPSTREAM_FLAG_MISSING"


def test_gate_refuses_tampered_3A_bundle(world_copy):
    f = next((world_copy.results / "3A/validation").glob("*.json"))
    f.write_bytes(f.read_bytes() + b" ")
    with pytest.raises(EngineFailure) as e:
        states.s0_gate(world_copy.for_state("5A.S0"))
    assert e.value.code == "5A.S0.UPSTREAM_HASHGATE_DIGEST_MISMATCH"


def test_malformed_5A_policy_is_named_at_parse_time(config_copy):
    p = config_copy / "config/5A/demand_scale_policy_5A.yaml"
    doc = yaml.safe_load(p.read_text())
    doc["brand_size_exponent"] = float("nan")
    p.write_text(yaml.safe_dump(doc))
    with pytest.raises(workflow.ConfigError) as e:
        workflow.check_policies(config_copy)
    assert "demand_scale_policy_5A.yaml" in str(e.value) and "brand_size_exponent" in str(e.value)

