"""1B.S2: per-country tile weights from a population/area/uniform blend, exact at 10^dp (RNG-free)."""
from __future__ import annotations

import numpy as np
import polars as pl

from engine.core import datasets
from engine.core.context import RunContext
from engine.core.errors import EngineFailure
from engine.core.integerise import integer_largest_remainder

from .common import grid_shape, policy, report_path, state_report, tile_of

CODE = "1B.S2"
MASS_SCALE = 2 ** 40          # float mass in [0,1] -> int; with K <= 10^6 the products stay < 2^63
# A coastal city whose own cell is not in its country's tiles goes to the first neighbour that
# is: 8 neighbours in a fixed order.
NEIGHBOURS = [(0, 0), (0, -1), (0, 1), (-1, 0), (1, 0), (-1, -1), (-1, 1), (1, -1), (1, 1)]


def city_population(ctx: RunContext, tiles: pl.DataFrame, g: float, min_pop: int) -> tuple[pl.DataFrame, int, int]:
    """Population per (country, tile) from GeoNames cities, and total vs placed population."""
    cities = datasets.read(ctx, "cities", CODE).filter(pl.col("population") >= min_pop)
    _, ncols = grid_shape(g)
    tid = tile_of(cities["lat"].to_numpy(), cities["lon"].to_numpy(), g).astype(np.int64)
    cand = pl.concat([
        cities.select("geonameid", pl.col("country_iso"), "population",
                      pl.Series("tile_id", tid + dr * ncols + dc).cast(pl.UInt64), pl.lit(k).alias("k"))
        for k, (dr, dc) in enumerate(NEIGHBOURS)])
    hit = (cand.join(tiles.select("country_iso", "tile_id"), on=["country_iso", "tile_id"], how="semi")
           .sort("geonameid", "k").unique("geonameid", keep="first"))
    pop = hit.group_by("country_iso", "tile_id").agg(pl.col("population").sum())
    return pop, int(cities["population"].sum()), int(hit["population"].sum())


def masses(tiles: pl.DataFrame, cfg: dict) -> pl.DataFrame:
    """Blend mass per tile; a term whose country sum is 0 is dropped and its β re-spread."""
    mix = cfg["basis_mix"] if cfg["basis"] == "blend" else {k: float(k == cfg["basis"]) for k in
                                                            ("population", "area_m2", "uniform")}
    t = tiles.with_columns((pl.col("population").cast(pl.Float64) ** cfg["city_pop_exponent"]).alias("pop_m"))
    one = pl.col("pixel_area_m2").is_not_null().cast(pl.Float64)     # 1.0 per row (a literal would not broadcast in sum)
    terms = {"population": pl.col("pop_m"), "area_m2": pl.col("pixel_area_m2"), "uniform": one}
    share = {k: (e / e.sum().over("country_iso")) for k, e in terms.items()}
    live = {k: (e.sum().over("country_iso") > 0) for k, e in terms.items()}
    beta_live = sum(pl.when(live[k]).then(mix[k]).otherwise(0.0) for k in terms)
    m = sum(pl.when(live[k]).then(mix[k] * share[k]).otherwise(0.0) for k in terms) / beta_live
    return t.with_columns(m.fill_nan(0.0).alias("mass"))


def run(ctx: RunContext) -> None:
    rep = state_report("S2")
    cfg = policy(ctx, "tile_weights", "S2")
    g = policy(ctx, "grid", "S2")["grid_deg"]
    tiles = datasets.read(ctx, "tile_index", CODE)
    pop, pop_total, pop_placed = city_population(ctx, tiles, g, cfg["city_min_population"])
    tiles = (tiles.join(pop, on=["country_iso", "tile_id"], how="left", maintain_order="left")
             .with_columns(pl.col("population").fill_null(0)))
    m = masses(tiles, cfg)
    mass = m["mass"].to_numpy()
    if not np.all(np.isfinite(mass)) or (mass < 0).any():
        raise EngineFailure(f"{CODE}.NORMALIZATION", "negative or non-finite tile mass", {"file": "config/1B/tile_weights.yaml"})
    m = m.with_columns(pl.Series("m_int", np.round(mass * MASS_SCALE).astype(np.int64)))
    zero = m.group_by("country_iso").agg(pl.col("m_int").sum()).filter(pl.col("m_int") == 0)["country_iso"].to_list()
    k = 10 ** cfg["dp"]
    w = integer_largest_remainder(m, ["country_iso"], "m_int", k, "tile_id", "weight_fp")
    sums = w.group_by("country_iso").agg(pl.col("weight_fp").sum())
    if (sums["weight_fp"] != k).any():
        raise EngineFailure(f"{CODE}.NORMALIZATION", "tile weights do not sum to 10^dp", {})
    out = w.select("country_iso", "tile_id", "weight_fp", pl.lit(cfg["dp"], pl.UInt8).alias("dp"),
                   pl.lit(cfg["basis"]).alias("basis"), "population")
    datasets.publish(ctx, out, "tile_weights", CODE)
    rep.count(tiles=out.height, countries=sums.height, zero_mass_fallback_countries=len(zero),
              populated_tiles=int((out["population"] > 0).sum()))
    rep.data["city_population_placed_share"] = round(pop_placed / max(pop_total, 1), 6)
    rep.data["zero_mass_fallback"] = zero
    rep.rng(None)
    rep.write(report_path(ctx, "S2"))
