"""1B.S6: a point inside the tile and inside the country for every outlet (RNG, bounded retry)."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import polars as pl

from engine.core import datasets, rng
from engine.core.context import RunContext
from engine.core.errors import EngineFailure
from engine.core.progress import Progress

from . import kernels
from .common import SEG, load_geometry, policy, report_path, rings, site_keys, state_report, streams, write_trace

CODE = "1B.S6"
CHUNK = 250_000          # sites per kernel call: bounded memory and a progress line per chunk


def site_frame(ctx: RunContext, code: str) -> tuple[pl.DataFrame, tuple]:
    """Sites with their tile rectangle ∩ country bbox, interior flag, anchor and geometry index."""
    sites = datasets.read(ctx, "s5_site_tile_assignment", code)
    tiles = datasets.read(ctx, "tile_index", code).select("country_iso", "tile_id", "interior", "inclusion_rule")
    bounds = datasets.read(ctx, "tile_bounds", code)
    geo = load_geometry(ctx, code)
    bbox = np.array([g.bounds for g in geo["geom"]])
    gtab = pl.DataFrame({"legal_country_iso": geo["country_iso"], "geom_idx": np.arange(geo.height),
                         "bx0": bbox[:, 0], "by0": bbox[:, 1], "bx1": bbox[:, 2], "by1": bbox[:, 3],
                         "rep_lon": geo["rep_lon"], "rep_lat": geo["rep_lat"]})
    df = (sites.join(bounds.rename({"country_iso": "legal_country_iso"}), on=["legal_country_iso", "tile_id"],
                     how="left", maintain_order="left")
          .join(tiles.rename({"country_iso": "legal_country_iso"}), on=["legal_country_iso", "tile_id"],
                how="left", maintain_order="left")
          .join(gtab, on="legal_country_iso", how="left", maintain_order="left"))
    if df["centroid_lat_deg"].null_count() or df["geom_idx"].null_count():
        raise EngineFailure(f"{code}.FK_TILE_INDEX", "site tile or country geometry not found", {})
    fb = pl.col("inclusion_rule") == "fallback_point"
    df = df.with_columns(
        pl.max_horizontal("min_lon_deg", "bx0").alias("r_lon0"), pl.min_horizontal("max_lon_deg", "bx1").alias("r_lon1"),
        pl.max_horizontal("min_lat_deg", "by0").alias("r_lat0"), pl.min_horizontal("max_lat_deg", "by1").alias("r_lat1"),
        pl.when(fb).then("rep_lon").otherwise("centroid_lon_deg").alias("a_lon"),
        pl.when(fb).then("rep_lat").otherwise("centroid_lat_deg").alias("a_lat"))
    return df, rings(geo["geom"].to_list())


class Jitter(NamedTuple):
    """Per site: accepted point, attempts used, fallback flag; the streams and their end states."""
    lon: np.ndarray
    lat: np.ndarray
    attempts: np.ndarray
    fallback: np.ndarray
    streams: np.ndarray
    end: np.ndarray


def jitter(ctx: RunContext, df: pl.DataFrame, geom_rings: tuple, max_attempts: int) -> Jitter:
    st = streams(ctx, "in_cell_jitter", site_keys(df))
    rect = df.select("r_lon0", "r_lon1", "r_lat0", "r_lat1").to_numpy()
    anchor = df.select("a_lon", "a_lat").to_numpy()
    gi = df["geom_idx"].to_numpy().astype(np.int64)
    interior = df["interior"].to_numpy()
    out = [np.empty(df.height), np.empty(df.height), np.empty(df.height, np.int64), np.empty(df.height, bool)]
    end = np.zeros((df.height, 5), np.uint64)
    prog = Progress("1B.S6 jitter", df.height, "sites", ctx.logger)
    for a in range(0, df.height, CHUNK):
        b = min(a + CHUNK, df.height)
        res = kernels.jitter_sites(st[a:b], rect[a:b], gi[a:b], interior[a:b], anchor[a:b], max_attempts, *geom_rings)
        for o, r in zip(out, res[:4]):
            o[a:b] = r
        end[a:b] = res[4]
        prog.update(b - a)
    return Jitter(*out, st, end)


def run(ctx: RunContext) -> None:
    rep = state_report("S6")
    cfg = policy(ctx, "jitter", "S6")
    df, geom_rings = site_frame(ctx, CODE)
    lon, lat, attempts, fallback, st, end = jitter(ctx, df, geom_rings, cfg["max_attempts"])
    if fallback.any() and cfg["on_exhaustion"] == "abort":
        i = int(np.argmax(fallback))
        raise EngineFailure(f"{CODE}.RESAMPLE_EXHAUSTED", f"no point inside the country in {cfg['max_attempts']} attempts",
                            {"merchant_id": df["merchant_id"][i], "country": df["legal_country_iso"][i]})
    out = df.select("merchant_id", "legal_country_iso", "site_order", "tile_id").with_columns(
        pl.Series("delta_lat_deg", lat - df["centroid_lat_deg"].to_numpy()),
        pl.Series("delta_lon_deg", lon - df["centroid_lon_deg"].to_numpy()),
        pl.Series("attempts", attempts), pl.Series("fallback", fallback))
    trace = rng.RngTrace()
    trace.add_states(f"{SEG}.in_cell_jitter", st, end)
    datasets.publish(ctx, out, "s6_site_jitter", CODE)
    rep.count(sites=out.height, attempts=int(attempts.sum()), fallbacks=int(fallback.sum()),
              interior_sites=int(df["interior"].sum()))
    rep.rng(write_trace(ctx, "S6", trace))
    rep.write(report_path(ctx, "S6"))
