"""Reference tables (engine.refdata.tables) built from the pinned packages and config/reference/."""
from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pycountry
import pytest

from engine.refdata import tables

REF = Path(__file__).resolve().parents[1] / "config" / "reference"
GDP, BUCKETS, LEGAL = REF / "gdp_per_capita.csv", REF / "gdp_bucket_map.csv", REF / "legal_tender.csv"

REQUIRED_MCCS = [4829, 5411, 5541, 5542, 5812, 5814, 5815, 5816, 5817, 5818, 5964, 5966, 5969, 6010, 6011,
                 6012, 6051, 7011, 7995, 4111, 4121, 4131, 4411, 4511, 4722, 4789]


@pytest.fixture(scope="module")
def countries() -> pl.DataFrame:
    return tables.country_table(GDP, BUCKETS, LEGAL)


def test_country_table_shape_and_keys(countries):
    assert countries.height >= 150
    assert countries.columns == ["country_iso", "alpha3", "numeric", "name", "continent", "population",
                                 "currency", "gdp_pc_usd", "gdp_bucket"]
    assert dict(countries.schema) == {
        "country_iso": pl.String, "alpha3": pl.String, "numeric": pl.Int32, "name": pl.String,
        "continent": pl.String, "population": pl.Int64, "currency": pl.String, "gdp_pc_usd": pl.Float64,
        "gdp_bucket": pl.Int8}
    assert countries["country_iso"].n_unique() == countries.height
    assert countries["country_iso"].to_list() == sorted(countries["country_iso"].to_list())
    assert countries.null_count().sum_horizontal().item() == 0
    assert (countries["population"] > 0).all() and (countries["gdp_pc_usd"] > 0).all()
    assert countries["country_iso"].str.len_chars().eq(2).all() and countries["alpha3"].str.len_chars().eq(3).all()
    for iso in countries["country_iso"]:
        assert pycountry.countries.get(alpha_2=iso) is not None


def test_currencies_valid(countries):
    for code in countries["currency"].unique():
        assert pycountry.currencies.get(alpha_3=code) is not None, code
    cur = tables.currency_table(countries)
    assert cur["currency"].to_list() == sorted(set(countries["currency"]))
    assert dict(cur.schema) == {"currency": pl.String, "name": pl.String, "numeric": pl.Int32}


def test_buckets_in_range_and_monotone(countries):
    assert countries["gdp_bucket"].is_between(1, 5).all()
    assert set(countries["gdp_bucket"].unique()) == {1, 2, 3, 4, 5}
    by_gdp = countries.sort("gdp_pc_usd", "country_iso")
    b = by_gdp["gdp_bucket"].to_list()
    assert all(x <= y for x, y in zip(b, b[1:])), "a higher GDP got a lower bucket"


def test_bucket_map_is_right_closed():
    bmap = tables.read_bucket_map(BUCKETS)
    edge = bmap["upper_inclusive"][0]
    got = tables.assign_buckets(pl.Series([edge, edge + 0.5, 1.0]), bmap).to_list()
    assert got == [1, 2, 1]


def test_major_countries(countries):
    rows = {r["country_iso"]: r for r in countries.iter_rows(named=True)}
    for iso in ("US", "DE", "IN", "NG", "BR", "JP", "CN"):
        assert iso in rows, iso
        assert rows[iso]["population"] > 1_000_000
    assert rows["US"]["currency"] == "USD" and rows["DE"]["currency"] == "EUR" and rows["IN"]["currency"] == "INR"
    assert rows["US"]["gdp_bucket"] >= rows["DE"]["gdp_bucket"] >= rows["IN"]["gdp_bucket"]
    assert rows["NA"]["currency"] == "NAD"  # Namibia: "NA" must not be read as null
    assert rows["PA"]["currency"] == "USD"  # legal-tender override


def test_policy_countries_present(countries):
    # Countries that the 1A policy files name must exist in country_ref (S0/S3 fail otherwise).
    need = {"BY", "CU", "IR", "KP", "RU", "SD", "SY", "VE", "LI", "PR", "HK", "SG", "AE"}
    assert need <= set(countries["country_iso"])


def test_mcc_table():
    mcc = tables.mcc_table()
    assert dict(mcc.schema) == {"mcc": pl.Int32, "description": pl.String}
    codes = mcc["mcc"].to_list()
    assert codes == sorted(set(codes))
    assert 250 <= len(codes) <= 400
    assert set(REQUIRED_MCCS) <= set(codes)
    assert any(3000 <= c <= 3999 for c in codes)
    assert (mcc["description"].str.len_chars() > 0).all()


def test_missing_gdp_csv_names_the_file(tmp_path):
    missing = tmp_path / "nope" / "gdp_per_capita.csv"
    with pytest.raises(FileNotFoundError, match="gdp_per_capita.csv"):
        tables.country_table(missing, BUCKETS, LEGAL)


def test_comment_lines_skipped(tmp_path):
    p = tmp_path / "g.csv"
    p.write_text("# a comment\ncountry_iso,gdp_pc_usd\n# another\nNA,4500\n", encoding="utf-8")
    df = tables.read_csv_commented(p)
    assert df.to_dicts() == [{"country_iso": "NA", "gdp_pc_usd": "4500"}]


def test_deterministic(tmp_path, countries):
    for name in ("gdp_per_capita.csv", "gdp_bucket_map.csv", "legal_tender.csv"):
        shutil.copy(REF / name, tmp_path / name)
    again = tables.country_table(tmp_path / "gdp_per_capita.csv", tmp_path / "gdp_bucket_map.csv",
                                 tmp_path / "legal_tender.csv")
    assert again.equals(countries)


def test_package_versions():
    v = tables.package_versions()
    assert set(v) == set(tables.REFERENCE_PACKAGES) and all(v.values())
