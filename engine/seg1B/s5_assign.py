"""1B.S5: which tile each outlet gets — a random permutation of sites over the tile slots."""
from __future__ import annotations

import numpy as np
import polars as pl

from engine.core import datasets, rng
from engine.core.context import RunContext
from engine.core.errors import EngineFailure

from . import kernels
from .common import SEG, pair_keys, report_path, state_report, streams, write_trace

CODE = "1B.S5"


def assign(ctx: RunContext, plan: pl.DataFrame) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    """plan sorted by (merchant, country, tile). Returns one row per site."""
    slots = plan.select("merchant_id", "legal_country_iso",
                        pl.col("tile_id").repeat_by("n_sites_tile")).explode("tile_id")
    pairs = plan.group_by("merchant_id", "legal_country_iso", maintain_order=True).agg(
        pl.col("n_sites_tile").sum().alias("n"))
    off = np.concatenate([[0], np.cumsum(pairs["n"].to_numpy())]).astype(np.int64)
    st = streams(ctx, "site_tile_assign", pair_keys(pairs))
    tiles, end = kernels.assign_sites(st, off, slots["tile_id"].to_numpy())
    sites = slots.select("merchant_id", "legal_country_iso").with_columns(
        (pl.int_range(pl.len()).over("merchant_id", "legal_country_iso") + 1).cast(pl.Int32).alias("site_order"),
        pl.Series("tile_id", tiles))
    return sites, st, end


def run(ctx: RunContext) -> None:
    rep = state_report("S5")
    plan = datasets.read(ctx, "s4_alloc_plan", CODE)
    sites, st, end = assign(ctx, plan)
    quota = sites.group_by("merchant_id", "legal_country_iso", "tile_id").len().join(
        plan, on=["merchant_id", "legal_country_iso", "tile_id"])
    if quota.height != plan.height or (quota["len"] != quota["n_sites_tile"]).any():
        raise EngineFailure(f"{CODE}.TILE_QUOTA_MISMATCH", "sites per tile differ from the plan", {})
    if int(end[:, 3].sum()) != sites.height:
        raise EngineFailure(f"{CODE}.RNG_EVENT_MISMATCH", "draws differ from sites", {})
    trace = rng.RngTrace()
    trace.add_states(f"{SEG}.site_tile_assign", st, end)
    datasets.publish(ctx, sites, "s5_site_tile_assignment", CODE)
    rep.count(sites=sites.height, pairs=st.shape[0])
    rep.rng(write_trace(ctx, "S5", trace))
    rep.write(report_path(ctx, "S5"))
