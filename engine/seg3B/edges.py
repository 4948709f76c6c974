"""3B.S2 edge catalogue: merchant-conditioned, settlement-coupled CDN edges (families 3B.edge_tile, 3B.edge_jitter).

Per virtual merchant (chapter B3 S2): profile = hu("3B.S2.profile", m) over the profiles' cumulative p;
E_m = clamp(round_half_even(edge_base·scale_p·f), lo, hi), f = a + (b−a)·hu("3B.S2.scale", m);
p(c) ∝ w(c)^γ·((1−κ) + κ·L(c)/max L), L = exp(−d(settlement, centroid(c))/decay), settlement share clamped
to [settle_floor, settle_cap]; E_m(c) by the largest-remainder law (ties: lower country_iso); the
settlement country gets >= 1 edge when it has tiles (donor: the largest count, ties to the later country).
Tiles by inverse CDF over 1B weight_fp (one uniform per edge), points by rejection in the tile (one block
per attempt). tzid_operational: `tz_lookup` once per distinct tile used (at its centroid), never per point; its source
(POLYGON, NUDGE, OVERRIDE, FALLBACK) when the lookup returns one (engine.seg3B.tz_lookup), else POLYGON.
edge_weight = p(c)/E_m(c) renormalised per merchant; edge_seq_index over (country_iso, slot);
edge_id = BE64(SHA256("3B.EDGE" 0x1F str(m) 0x1F LE32(edge_seq_index))[24:32]).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import polars as pl

from engine.core import rng
from engine.core.errors import EngineFailure
from engine.core.hash_uniform import hash_uniform, sha256_binary_rows, u64_hash_ids

from . import kernels
from .tz_lookup import resolve_points

TILE_FAMILY = "3B.edge_tile"
JITTER_FAMILY = "3B.edge_jitter"
RESIDUE_DP = 8
TZ_SOURCES = ("POLYGON", "OVERRIDE", "NUDGE", "FALLBACK")   # engine.seg3B.tz_lookup


class TileSurface(NamedTuple):
    """1B tiles of every country, sorted (country_iso, tile_id), as arrays for the kernels."""
    countries: np.ndarray      # country_iso per country index (sorted)
    c_off: np.ndarray          # tiles of country c: rows c_off[c]..c_off[c+1]
    tiles: pl.DataFrame        # country_iso, tile_id, centroid_lat_deg, centroid_lon_deg, weight_fp
    cum: np.ndarray            # cumulative weight_fp within each country (float64)
    rect: np.ndarray           # (n, 4) min_lon, max_lon, min_lat, max_lat
    anchor: np.ndarray         # (n, 2) lon, lat used when jitter is exhausted
    interior: np.ndarray       # bool: accept the first point without a polygon test
    geom_idx: np.ndarray       # geometry index per tile (into the rings), 0 when no geometry is given
    centroid: np.ndarray       # (n_countries, 2) weighted centroid lat, lon


def tile_surface(tiles: pl.DataFrame, grid_deg: float = 0.25, code: str = "3B.S2") -> TileSurface:
    """From 1B tile_index ⨝ tile_weights (+ optional tile_bounds min/max_*_deg, interior, geom_idx,
    anchor_lon/lat). Missing bounds are the grid cell around the centroid; missing `interior` means every
    tile accepts its first point (no geometry)."""
    t = tiles.with_columns(pl.col("country_iso").cast(pl.String)).filter(pl.col("weight_fp") > 0) \
        .sort("country_iso", "tile_id")
    if t.height == 0:
        raise EngineFailure(f"{code}.TILE_SURFACE_INVALID", "no tiles with positive weight", {})
    h = grid_deg / 2
    cols = set(t.columns)
    if not {"min_lon_deg", "max_lon_deg", "min_lat_deg", "max_lat_deg"} <= cols:
        t = t.with_columns((pl.col("centroid_lon_deg") - h).alias("min_lon_deg"), (pl.col("centroid_lon_deg") + h)
                           .alias("max_lon_deg"), (pl.col("centroid_lat_deg") - h).alias("min_lat_deg"),
                           (pl.col("centroid_lat_deg") + h).alias("max_lat_deg"))
    if "interior" not in cols:
        t = t.with_columns(pl.lit(True).alias("interior"))
    if "geom_idx" not in cols:
        t = t.with_columns(pl.lit(0, pl.Int64).alias("geom_idx"))
    if "anchor_lon" not in cols:
        t = t.with_columns(pl.col("centroid_lon_deg").alias("anchor_lon"), pl.col("centroid_lat_deg").alias("anchor_lat"))
    iso = t["country_iso"].to_numpy()
    countries = np.unique(iso)
    c_off = np.append(np.searchsorted(iso, countries, "left"), t.height).astype(np.int64)
    wfp = t["weight_fp"].to_numpy().astype(np.float64)
    cum = t.select(pl.col("weight_fp").cast(pl.Float64).cum_sum().over("country_iso"))["weight_fp"].to_numpy()
    cen = kernels.weighted_centroids(c_off, t["centroid_lat_deg"].to_numpy(), t["centroid_lon_deg"].to_numpy(), wfp)
    return TileSurface(countries, c_off, t, cum, t.select("min_lon_deg", "max_lon_deg", "min_lat_deg", "max_lat_deg")
                       .to_numpy(), t.select("anchor_lon", "anchor_lat").to_numpy(), t["interior"].to_numpy(),
                       t["geom_idx"].to_numpy().astype(np.int64), cen)


def country_weights(doc: dict, surface: TileSurface, code: str = "3B.S2") -> np.ndarray:
    """CDN weight per surface country (0 where the table has none), normalised to Σ = 1."""
    tab = pl.DataFrame(doc["countries"]).select(pl.col("country_iso").cast(pl.String), pl.col("weight").cast(pl.Float64))
    if tab["country_iso"].is_duplicated().any():
        raise EngineFailure(f"{code}.COUNTRY_WEIGHTS_INVALID", "country listed twice", {})
    w = pl.DataFrame({"country_iso": surface.countries}).join(tab, on="country_iso", how="left", maintain_order="left") \
        ["weight"].fill_null(0.0).to_numpy()
    if not w.sum() > 0:
        raise EngineFailure(f"{code}.COUNTRY_WEIGHTS_INVALID", "no tiled country has a positive CDN weight", {})
    return w / w.sum()


def merchant_profiles(merchant_id, topo: dict) -> tuple[np.ndarray, np.ndarray]:
    """(profile index, E_m) per merchant from the two hash-uniforms."""
    p = np.array([x["p"] for x in topo["profiles"]], np.float64)
    cum = np.cumsum(p / p.sum())
    prof = np.minimum(np.searchsorted(cum, hash_uniform("3B.S2.profile", merchant_id), "right"), len(p) - 1)
    a, b = topo["scale_factor_range"]
    f = a + (b - a) * hash_uniform("3B.S2.scale", merchant_id)
    scale = np.array([x["scale"] for x in topo["profiles"]])[prof]
    lo, hi = topo["edge_count_clamp"]
    return prof, np.clip(np.round(topo["edge_base"] * scale * f), lo, hi).astype(np.int64)


def _streams(identity: dict, family: str, merchant_id) -> np.ndarray:
    keys = pl.Series(np.asarray(merchant_id, np.uint64)).cast(pl.String).to_arrow()
    return rng.derive_streams(family, identity["manifest_fingerprint"], identity["parameter_hash"], identity["seed"],
                              "", keys)


def edge_ids(merchant_id: np.ndarray, edge_m: np.ndarray, seq: np.ndarray) -> np.ndarray:
    s = pl.Series(np.asarray(merchant_id, np.uint64)).cast(pl.String).to_arrow().cast("large_string")
    _, o, d = s.buffers()
    m_off = np.frombuffer(o, np.int64)[s.offset:s.offset + len(s) + 1]
    data, off = kernels.edge_messages(np.frombuffer(d, np.uint8), m_off, edge_m, seq.astype(np.int64))
    return u64_hash_ids(sha256_binary_rows(data, off, b"3B.EDGE\x1f"))


class Edges(NamedTuple):
    catalogue: pl.DataFrame    # edge_catalogue_3B rows sorted (merchant_id, edge_id)
    index: pl.DataFrame        # per merchant: edge_count_total, n_countries, profile, attempts, fallbacks
    trace: rng.RngTrace
    events: pl.DataFrame       # one aggregated event per (merchant, family)


def edge_catalogue(settle: pl.DataFrame, cdn: dict, surface: TileSurface, tz_lookup, identity: dict,
                   rings=None, code: str = "3B.S2") -> Edges:
    """`settle`: merchant_id, settlement_country_iso, lat_deg, lon_deg (one row per virtual merchant).
    `rings`: engine.core.geometry.Rings of the geometries `surface.geom_idx` points at (None: no polygon test)."""
    topo = cdn["edge_topology"]
    s = settle.sort("merchant_id")
    mid = s["merchant_id"].to_numpy().astype(np.uint64)
    w = country_weights(cdn, surface, code)
    prof, n_edges = merchant_profiles(mid, topo) if len(mid) else (np.zeros(0, np.int64), np.zeros(0, np.int64))
    P = topo["profiles"]
    g = lambda k: np.array([x[k] for x in P], np.float64)[prof]
    cidx = {c: i for i, c in enumerate(surface.countries.tolist())}      # ~250 countries
    s_idx = s["settlement_country_iso"].cast(pl.String).replace_strict(cidx, default=-1, return_dtype=pl.Int64).to_numpy()
    m_off, r_c, r_n, r_p = kernels.country_mix(
        s["lat_deg"].to_numpy(), s["lon_deg"].to_numpy(), s_idx, n_edges, g("gamma"), g("coupling"),
        g("settle_floor"), g("settle_cap"), w, surface.centroid, float(topo["locality_decay_km"]), RESIDUE_DP)
    st_t = _streams(identity, TILE_FAMILY, mid) if len(mid) else np.zeros((0, 3), np.uint64)
    st_j = _streams(identity, JITTER_FAMILY, mid) if len(mid) else np.zeros((0, 3), np.uint64)
    xs, ys, ro, go = rings if rings is not None else (np.zeros(1), np.zeros(1), np.zeros(2, np.int64), np.zeros(2, np.int64))
    interior = surface.interior if rings is not None else np.ones(len(surface.interior), np.bool_)
    tile, lon, lat, att, fb, end_t, end_j = kernels.place_edges(
        st_t, st_j, m_off, r_c, r_n, surface.c_off, surface.cum, surface.rect, interior, surface.geom_idx,
        surface.anchor, int(topo["jitter_max_attempts"]), xs, ys, ro, go)
    if fb.any() and topo["jitter_on_exhaustion"] == "abort":
        raise EngineFailure(f"{code}.JITTER_EXHAUSTED", "no point inside the country within the attempt budget",
                            {"tile_row": int(tile[np.argmax(fb)])})
    # per edge: merchant, country-row (r), slot
    row_of_edge = np.repeat(np.arange(len(r_n)), r_n)
    m_of_row = np.repeat(np.arange(len(mid)), np.diff(m_off))
    edge_m = m_of_row[row_of_edge]
    first_edge = np.concatenate([[0], np.cumsum(n_edges)])[:-1].astype(np.int64)
    seq = np.arange(len(edge_m)) - first_edge[edge_m]
    if len(edge_m) != int(n_edges.sum()):
        raise EngineFailure(f"{code}.INDEX_INCONSISTENT", "edges per country do not sum to the merchant's edge count", {})
    kept_p = np.add.reduceat(r_p, m_off[:-1]) if len(r_p) else np.zeros(0)
    weight = (r_p / r_n)[row_of_edge] / kept_p[edge_m] if len(r_p) else np.zeros(0)
    # tz once per distinct tile used
    tt = surface.tiles
    used = np.unique(tile)
    tz_u, src_u = resolve_points(tz_lookup, tt["centroid_lat_deg"].to_numpy()[used],
                                 tt["centroid_lon_deg"].to_numpy()[used], tt["country_iso"].to_numpy()[used])
    if len(used) and np.equal(tz_u, None).any():
        raise EngineFailure(f"{code}.TZ_RESOLUTION_FAILED", "a tile has no tzid", {})
    at = np.searchsorted(used, tile)
    tz = tz_u[at] if len(tile) else np.zeros(0, object)
    tz_src = src_u[at] if src_u is not None and len(tile) else np.full(len(tile), "POLYGON")
    cat = pl.DataFrame({
        "merchant_id": mid[edge_m], "edge_id": edge_ids(mid, edge_m, seq), "edge_seq_index": seq.astype(np.int32),
        "country_iso": surface.countries[r_c[row_of_edge]] if len(r_c) else np.zeros(0, str),
        "lat_deg": lat, "lon_deg": lon, "tzid_operational": tz.astype(str),
        "tz_source": tz_src.astype(str), "edge_weight": weight,
        "tile_id": tt["tile_id"].to_numpy()[tile] if len(tile) else np.zeros(0, np.uint64),
        "profile": np.array([x["name"] for x in P])[prof][edge_m] if len(edge_m) else np.zeros(0, str),
        "attempts": att.astype(np.int32), "jitter_fallback": fb,
    }, schema_overrides={"merchant_id": pl.UInt64, "edge_id": pl.UInt64, "tile_id": pl.UInt64})
    cat = cat.with_columns(pl.col("tz_source").cast(pl.Enum(TZ_SOURCES))).sort("merchant_id", "edge_id")
    if cat["edge_id"].is_duplicated().any():
        raise EngineFailure(f"{code}.INDEX_INCONSISTENT", "edge_id collision", {})
    index = pl.DataFrame({"merchant_id": mid, "edge_count_total": n_edges.astype(np.int32),
                          "n_countries": np.diff(m_off).astype(np.int16),
                          "profile": np.array([x["name"] for x in P])[prof] if len(mid) else np.zeros(0, str)},
                         schema_overrides={"merchant_id": pl.UInt64})
    trace = rng.RngTrace()
    trace.add_states(TILE_FAMILY, st_t, end_t)
    trace.add_states(JITTER_FAMILY, st_j, end_j)
    ev = pl.concat([pl.DataFrame({"merchant_id": mid, "family": fam, "draws": e[:, 3].astype(np.int64),
                                  "blocks": e[:, 4].astype(np.int64)}, schema_overrides={"merchant_id": pl.UInt64})
                    for fam, e in ((TILE_FAMILY, end_t), (JITTER_FAMILY, end_j))])
    return Edges(cat, index, trace, ev)
