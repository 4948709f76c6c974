"""5A states S0-S4 (RNG-free): the logic modules beside this one do the work; these functions
read the declared inputs, call them in the chapter's order and publish (chapter 5A §3).

S4 streams `merchant_zone_scenario_utc_5A` through the core batch writer, one Parquet part set
per scenario partition, so memory stays bounded by a merchant block (~1e8 rows on `full`).
S4 is `shardable`: a shard job writes its merchants' rows of the surface (calendar and manifest whole),
`s4_merge` joins them into the one job's bytes (engine.core.shards).
`merchant_zone_scenario_local_5A` is not published: no segment reads it (INTERFACES §1).
"""
from __future__ import annotations

import numpy as np
import polars as pl

from engine.core import civil_time, datasets, scan, shards
from engine.core.context import RunContext
from engine.core.errors import EngineFailure
from engine.core.gate import run_gate
from engine.core.segment import Segment

from . import baseline, calendar, classify, horizon, manifest, overlay, project, shapes
from .common import POLICY_NAMES, SEGMENT, load_policies
from .shapes import T_WEEK

_SEG = Segment(SEGMENT)
SHAPE_KEY = shapes.SHAPE_KEY


def policies(ctx: RunContext, state: str) -> dict[str, dict]:
    """Every 5A policy from the state's declared files (schema, finite, cross-file checks)."""
    return load_policies(ctx.io.policy(SEGMENT, POLICY_NAMES[0]).parents[2], f"{SEGMENT}.{state}")


def s0_gate(ctx: RunContext) -> None:
    code = "5A.S0"
    rep = _SEG.report("S0")
    p = policies(ctx, "S0")
    manifest.scenarios_to_run(ctx.config, p["scenario_horizon_config_5A"], code)
    up = run_gate(ctx, code, {"holidays_version": calendar.holidays_version()})
    rep.count(upstream_verified=len(up))
    rep.rng(None)
    rep.write(_SEG.report_path(ctx, "S0"))


def s1_profile(ctx: RunContext) -> None:
    code = "5A.S1"
    rep = _SEG.report("S1")
    p = policies(ctx, "S1")
    zones = classify.merchant_zones(datasets.read(ctx, "zone_alloc", code), datasets.read(ctx, "site_timezones", code))
    prof = classify.classify(zones, datasets.read(ctx, "merchant_ids", code),
                             datasets.read(ctx, "virtual_classification_3B", code),
                             p["merchant_class_policy_5A"], p["demand_scale_policy_5A"], ctx.receipt["parameter_hash"],
                             classify.preset_volume_scale(p["demand_scale_policy_5A"], ctx.config["preset"]))
    datasets.publish(ctx, prof, "merchant_zone_profile_5A", code)
    datasets.publish(ctx, classify.class_profile(prof), "merchant_class_profile_5A", code)
    rep.count(rows=prof.height, merchants=prof["merchant_id"].n_unique())
    rep.data["weekly_volume_total"] = float(prof["weekly_volume_expected"].sum())
    rep.rng(None)
    rep.write(_SEG.report_path(ctx, "S1"))


def s2_shapes(ctx: RunContext) -> None:
    code = "5A.S2"
    rep = _SEG.report("S2")
    p = policies(ctx, "S2")
    prof = datasets.read(ctx, "merchant_zone_profile_5A", code)
    keys, S = shapes.build_shapes(prof, p["shape_library_5A"], p["zone_shape_modifiers_5A"],
                                  ctx.receipt["parameter_hash"])
    datasets.publish(ctx, shapes.shapes_long(keys, S), "class_zone_shape_5A", code)
    datasets.publish(ctx, shapes.time_grid(p["shape_time_grid_policy_5A"]), "shape_grid_definition_5A", code)
    rep.count(shape_keys=keys.height)
    rep.data["max_abs_sum_minus_1"] = float(np.abs(S.sum(axis=1) - 1.0).max(initial=0.0))
    rep.rng(None)
    rep.write(_SEG.report_path(ctx, "S2"))


def _shape_matrix(long: pl.DataFrame) -> tuple[pl.DataFrame, np.ndarray]:
    long = long.sort(*SHAPE_KEY, "bucket_index")
    keys = long.filter(pl.col("bucket_index") == 0).drop("bucket_index", "shape_value")
    return keys, long["shape_value"].to_numpy().reshape(keys.height, T_WEEK)


def s3_baseline(ctx: RunContext) -> None:
    code = "5A.S3"
    rep = _SEG.report("S3")
    p = policies(ctx, "S3")
    prof = datasets.read(ctx, "merchant_zone_profile_5A", code)
    keys, S = _shape_matrix(datasets.read(ctx, "class_zone_shape_5A", code))
    base, w_eff, lift = baseline.baseline(prof, keys, S, p["demand_scale_policy_5A"], p["baseline_intensity_policy_5A"])
    datasets.publish(ctx, baseline.baseline_long(prof, base, lift), "merchant_zone_baseline_local_5A", code)
    rep.count(rows=prof.height * T_WEEK)
    rep.data["weekly_total"] = float(w_eff.sum())
    rep.rng(None)
    rep.write(_SEG.report_path(ctx, "S3"))


def s4_scenarios(ctx: RunContext) -> None:
    code = "5A.S4"
    rep = _SEG.report("S4")
    p = policies(ctx, "S4")
    prof = datasets.read(ctx, "merchant_zone_profile_5A", code)
    # published in (merchant, zone, bucket) order (its contract's sort key): no string decode, no sort
    base = baseline.base_matrix(scan.read_columns(ctx, "merchant_zone_baseline_local_5A", code, baseline.BASE_COLUMNS),
                                prof, code)
    cache = civil_time.flatten_cache(datasets.read_table(ctx, "tz_timetable_cache", code), code)
    hz = horizon.horizon_from_config(ctx.config, code_prefix=code)
    tzids = sorted(set(prof["zone_representation"].to_list()), key=str.encode)
    grid = horizon.build_local_grid(tzids, cache, hz, code)
    countries = sorted(set(prof["legal_country_iso"].to_list()))
    scen = manifest.scenarios_to_run(ctx.config, p["scenario_horizon_config_5A"], code)
    cals, meta = [], {}
    stats = project.StreamStats()
    rows, sums = _shard_rows(prof, ctx.io.shard, code), {}
    # the bucket index counts up 0..H-1 per zone: delta-encoded (contract x-parquet) it is ~0 bytes
    scen = sorted(scen, key=lambda s: s["scenario_id"])
    own = shards.own_scenarios(ctx, [s["scenario_id"] for s in scen], code)
    with datasets.writer(ctx, "merchant_zone_scenario_utc_5A", code) as w:
        for s in scen:
            sid = s["scenario_id"]
            cal = calendar.generate_calendar(s, hz, countries, tzids, p["scenario_calendar_generator_5A"])
            calendar.validate_calendar(cal, p["scenario_overlay_policy_5A"], hz, code)
            meta[sid] = (calendar.calendar_sha256(cal), cal.height)
            cals.append(cal.with_columns(pl.lit(sid).alias("scenario_id")))
            if sid not in own:          # a shard job of another scenario: calendars are whole, λ is not
                continue
            sig = overlay.signatures(prof, grid, cal)
            F, _ = overlay.overlay_factors(cal, sig, grid, p["scenario_overlay_policy_5A"],
                                           p["overlay_ordering_policy_5A"])
            c0 = len(stats.chunk_sums)
            for chunk in project.utc_chunks(prof, base, grid, sig, F, stats=stats, rows=rows):
                w.write(chunk, subdir=f"scenario_id={sid}")
            sums[sid] = stats.chunk_sums[c0:]
    datasets.publish(ctx, pl.concat(cals), "scenario_calendar_5A", code, partition_by="scenario_id")
    datasets.publish(ctx, manifest.scenario_manifest(scen, hz, meta, calendar.holidays_version()),
                     "scenario_manifest_5A", code)
    rep.count(utc_rows=stats.rows, scenarios=len(scen), tzids=len(tzids))
    rep.data["expected_arrivals"] = float(sum(stats.chunk_sums))
    if ctx.io.shard is not None:                # the merge adds the blocks up in the one job's order
        rep.data["chunk_sums"] = sums
    rep.rng(None)
    rep.write(_SEG.report_path(ctx, "S4"))


def _shard_rows(prof: pl.DataFrame, shard: tuple[int, int] | None, code: str) -> tuple[int, int] | None:
    """The profile rows [a, b) of a merchant shard: one range, the profile being in merchant order."""
    if shard is None:
        return None
    idx = np.flatnonzero(shards.merchant_mask(prof["merchant_id"].to_numpy(), shard))
    if len(idx) and idx[-1] - idx[0] + 1 != len(idx):
        raise EngineFailure(f"{code}.SHARD_NOT_CONTIGUOUS", "merchant_zone_profile_5A is not in merchant order; "
                            "rerun 5A.S1", {"shard": list(shard)})
    return (int(idx[0]), int(idx[-1]) + 1) if len(idx) else (0, 0)


def _s4_report(reports: list[dict]) -> dict:
    """Row counts add up; scenarios and zones are the whole run's; the expected arrivals are the block
    sums of every shard, scenario by scenario (sorted) in shard order, added in that order as one job does."""
    rep = shards.add_reports(reports, whole=("scenarios", "tzids"))
    sids = sorted({sid for r in reports for sid in r["chunk_sums"]})
    sums = [x for sid in sids for r in reports for x in r["chunk_sums"].get(sid, [])]
    rep["expected_arrivals"] = float(sum(sums))
    del rep["chunk_sums"]
    return rep


def s4_merge(ctx: RunContext) -> None:
    """S4 run as shard jobs (scenario x merchant shard): the λ surface concatenated, calendar and
    manifest (whole in every shard) kept once (engine.core.shards)."""
    shards.merge(ctx, "5A.S4", report=_s4_report)
