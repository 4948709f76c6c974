"""Sites at sea, by a land mask independent of the country polygons.

global-land-mask (pinned) ships the GLOBE 1 km (30 arc-second) land/sea raster of NOAA NGDC; the
country polygons come from Natural Earth, so the two sources disagree only where one of them is
wrong (or at islets below the raster's 1 km cell). Vectorised: one raster lookup per site.
"""
from __future__ import annotations

import numpy as np
import polars as pl


def at_sea(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """True where the GLOBE mask says ocean."""
    from global_land_mask import globe
    lat = np.clip(np.asarray(lat, np.float64), -90.0, 90.0)
    lon = np.clip(np.asarray(lon, np.float64), -180.0, 180.0)
    return np.asarray(globe.is_ocean(lat, lon), bool)


def sea_figures(sites: pl.DataFrame) -> dict:
    """Share and count of sites at sea, and the countries that hold them (most first)."""
    sea = at_sea(sites["lat_deg"].to_numpy(), sites["lon_deg"].to_numpy())
    n = sites.height
    by = (sites.select("legal_country_iso").with_columns(pl.Series("sea", sea))
          .group_by("legal_country_iso").agg(pl.col("sea").sum().alias("at_sea"), pl.len().alias("sites"))
          .filter(pl.col("at_sea") > 0).sort(["at_sea", "legal_country_iso"], descending=[True, False]))
    return {"sea_share": float(sea.mean()) if n else 0.0, "sites_at_sea": int(sea.sum()), "sites": n,
            "by_country": {r[0]: [int(r[1]), int(r[2])] for r in by.head(10).iter_rows()}}


def gate(sites: pl.DataFrame, cfg: dict, preset: str, chk) -> dict:
    """The sites-at-sea corridor: fails (or warns, per preset) above cfg['max_share']."""
    f = sea_figures(sites)
    sev = cfg["severity"][preset]
    ok = f["sea_share"] <= cfg["max_share"]
    worst = ", ".join(f"{k} {v[0]}/{v[1]}" for k, v in f["by_country"].items())
    chk.add("corridor_max_sites_at_sea_share", ok, figure=f["sea_share"], threshold=cfg["max_share"],
            detail=f"{f['sites_at_sea']} of {f['sites']} sites at sea (GLOBE 1 km mask); {worst}", severity=sev)
    return {"value": f["sea_share"], "threshold": cfg["max_share"], "severity": sev, "pass": bool(ok),
            "sites_at_sea": f["sites_at_sea"], "by_country": f["by_country"]}
