"""5B S1 -> S4 for one scenario as one call over in-memory inputs (tests, benchmarks, and the
shape the state modules will follow). Files, gates and run reports are the lead's wiring."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from engine.core import rng

from . import arrivals as A
from . import logic as L


@dataclass
class ScenarioOut:
    grid: pl.DataFrame
    g: L.Grid
    domain: pl.DataFrame          # (merchant_id, zone_representation, channel_group) + group columns
    group_report: dict
    groups: pl.DataFrame          # per group: sigma, length_scale, g
    factors: np.ndarray           # (G, H)
    row_c: np.ndarray             # per λ row
    row_b: np.ndarray
    lam_target: np.ndarray
    lam_factor: np.ndarray
    lam_realised: np.ndarray
    count: np.ndarray
    capped: np.ndarray
    row_virtual: np.ndarray       # per λ row (0 where count is 0)
    s4: dict
    trace: rng.RngTrace
    cp: A.CoarsePlan


def run_scenario(lam: pl.DataFrame, profile: pl.DataFrame, classification: pl.DataFrame, scenario: dict,
                 pol: dict, plan: A.RoutingPlan, derive: L.Derive, sink: Callable[[pa.Table], None],
                 batch_target: int | None = None, parallel: bool = True) -> ScenarioOut:
    """`lam`: 5A merchant_zone_scenario_utc_5A rows sorted by (merchant, zone, channel, bucket);
    `scenario`: scenario_manifest_5A row (horizon_start_utc, horizon_end_utc, bucket_duration_seconds,
    is_baseline, is_stress, scenario_id)."""
    grid, g = L.time_grid(scenario["horizon_start_utc"], scenario["horizon_end_utc"],
                          scenario["bucket_duration_seconds"], pol["time_grid_policy_5B"],
                          scenario["is_baseline"], scenario["is_stress"])
    dom, row_c = L.domain_keys(lam)
    row_b = lam["utc_horizon_bucket_index"].to_numpy().astype(np.int64)
    if row_b.size and (row_b.min() < 0 or row_b.max() >= g.H):
        raise L._fail(f"{L.SEG}.S2.DOMAIN_ALIGN_FAILED", "λ bucket outside the scenario grid")
    grp, rep = L.grouping(dom, profile, classification, scenario["scenario_id"], scenario["is_baseline"],
                          pol["grouping_policy_5B"])
    lg = pol["arrival_lgcp_config_5B"]
    groups, f, trace = L.latent_factors(grp, g.H, lg, derive)
    c_group = grp.join(groups.select("group_id", "g"), on="group_id", how="left", maintain_order="left")["g"].to_numpy()
    lt = lam["lambda_utc_scenario"].to_numpy().astype(np.float64)
    fac, mu = L.realised_intensity(row_c, row_b, lt, c_group, f, float(lg["clipping"]["lambda_max"]))
    cc = pol["arrival_count_config_5B"]
    kappa = L.count_params(grp, cc)
    keys = derive("bucket_count", L.coarse_key_strings(dom))
    n, capped, t3 = L.bucket_counts(row_c, row_b, mu, kappa, keys, cc)
    cp = A.coarse_plan(dom, plan, derive)
    nz = np.flatnonzero(n > 0)
    bt = batch_target or pol["arrival_time_placement_policy_5B"]["batch_target_arrivals"]
    s4, t4, rv = A.realise_arrivals(row_c[nz], row_b[nz], n[nz], mu[nz], cp, plan, g,
                                    pol["arrival_routing_policy_5B"], bt, sink, parallel)
    row_virtual = np.zeros(len(n), np.int64)
    row_virtual[nz] = rv
    for t in (t3, t4):
        trace.merge(t)
    return ScenarioOut(grid, g, grp, rep, groups, f, row_c, row_b, lt, fac, mu, n, capped, row_virtual, s4, trace, cp)
