"""1B.S4: integer allocation of each (merchant, country) count over the country's tiles."""
from __future__ import annotations

import numpy as np
import polars as pl

from engine.core import csr, datasets, rng
from engine.core.context import RunContext
from engine.core.errors import EngineFailure

from . import kernels
from .common import SEG, pair_keys, policy, report_path, state_report, streams, write_trace

CODE = "1B.S4"


def country_layout(weights: pl.DataFrame) -> tuple[list[str], np.ndarray, pl.DataFrame]:
    """Countries in ISO order with CSR offsets over their tiles (tile_id order)."""
    w = weights.sort("country_iso", "tile_id")
    isos = w["country_iso"].unique(maintain_order=True).to_list()
    codes = w["country_iso"].cast(pl.Enum(isos)).to_physical().to_numpy()
    return isos, csr.offsets(np.arange(len(isos)), codes), w


def allocate(ctx: RunContext, req: pl.DataFrame, weights: pl.DataFrame, sampled: bool):
    isos, offs, w = country_layout(weights)
    missing = req.filter(~pl.col("legal_country_iso").is_in(isos))
    if missing.height:
        raise EngineFailure(f"{CODE}.MISSING_TILE_WEIGHTS", "a required country has no tile weights; rebuild "
                            "tile_weights (rule seg1B_s2_weights)", {"country": missing["legal_country_iso"][0]})
    dp = int(w["dp"][0])
    pc = req["legal_country_iso"].cast(pl.Enum(isos)).to_physical().to_numpy().astype(np.int64)
    st = streams(ctx, "alloc_remainder", pair_keys(req))
    rp, rt, rc, end = kernels.allocate_pairs(st, pc, req["n_sites"].to_numpy().astype(np.int64), offs,
                                             w["weight_fp"].to_numpy(), 10 ** dp, sampled)
    plan = pl.DataFrame({
        "merchant_id": req["merchant_id"].to_numpy()[rp],
        "legal_country_iso": req["legal_country_iso"].to_numpy()[rp],
        "tile_id": w["tile_id"].to_numpy()[rt],
        "n_sites_tile": rc,
    }).sort("merchant_id", "legal_country_iso", "tile_id")
    return plan, st, end


def run(ctx: RunContext) -> None:
    rep = state_report("S4")
    sampled = policy(ctx, "alloc_plan", "S4")["remainder_mode"] == "sampled"
    req = datasets.read(ctx, "s3_requirements", CODE)
    if req.height == 0:
        raise EngineFailure(f"{CODE}.NO_REQUIREMENTS", "s3_requirements is empty", {})
    weights = datasets.read(ctx, "tile_weights", CODE)
    plan, st, end = allocate(ctx, req, weights, sampled)
    s = plan.group_by("merchant_id", "legal_country_iso").agg(pl.col("n_sites_tile").sum()) \
        .join(req, on=["merchant_id", "legal_country_iso"], how="full", coalesce=True)
    if s.filter(pl.col("n_sites_tile").fill_null(0) != pl.col("n_sites").fill_null(0)).height:
        raise EngineFailure(f"{CODE}.ALLOCATION_MISMATCH", "allocation does not sum to the requirement", {})
    trace = rng.RngTrace()
    trace.add_states(f"{SEG}.alloc_remainder", st, end)
    datasets.publish(ctx, plan, "s4_alloc_plan", CODE)
    rep.count(rows=plan.height, pairs=req.height, sites=int(plan["n_sites_tile"].sum()),
              remainder_units=int(end[:, 3].sum()))
    rep.data["alloc_sum_equals_requirements"] = True
    rep.data["remainder_mode"] = "sampled" if sampled else "lrr"
    rep.rng(write_trace(ctx, "S4", trace))
    rep.write(report_path(ctx, "S4"))
