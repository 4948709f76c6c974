"""1A realism figures, measured against the authored priors (merchant_mix.yaml, card_market.yaml).

`figures` is pure (frames in, dict out) so that 1A.S9 and scripts/realism_figures.py share it;
`gate` turns it into corridor checks whose severity depends on the preset (soft on tiny).
"""
from __future__ import annotations

import numpy as np
import polars as pl

from .mix import card_market_weights, mix_table, spearman


def figures(merchants: pl.DataFrame, catalogue: pl.DataFrame, cref: pl.DataFrame, mcc_codes: np.ndarray,
            mix: dict, cm: dict, rz: dict) -> dict:
    """MCC-group shares, rare-MCC maximum, digital CNP share, and how outlets per country follow
    the card-market weight (Spearman over countries with outlets; small-country over-representation)."""
    groups = mix_table(mix, mcc_codes).select("mcc", "group")
    m = merchants.select(pl.col("mcc").cast(pl.Int64), "channel").join(groups, on="mcc", how="left")
    n = max(m.height, 1)
    share = {g: c / n for g, c in m.group_by("group").len().sort("group").iter_rows()}
    core = float(sum(share.get(g, 0.0) for g in rz["core_groups"]))
    per_mcc = m.group_by("mcc").len()
    rare = per_mcc.filter(pl.col("mcc").is_in(rz["rare_mcc"])).sort("len", "mcc", descending=[True, False])
    rare_max = float(rare["len"][0] / n) if rare.height else 0.0
    dig = m.filter(pl.col("group").is_in(rz["digital_groups"]))
    dig_cnp = float((dig["channel"] == "card_not_present").mean()) if dig.height else float("nan")

    w = cref.select("country_iso", "population").with_columns(pl.Series("w", card_market_weights(cref, cm)))
    w = w.with_columns((pl.col("w") / pl.col("w").sum()).alias("w_share"))
    out = (catalogue.group_by(pl.col("legal_country_iso").alias("country_iso")).len("outlets")
           .join(w, on="country_iso", how="left").sort("country_iso"))
    total = max(int(out["outlets"].sum() or 0), 1)
    # A country's expected outlets are floored at min_expected: below about one merchant's worth,
    # a single draw (one shop in Comoros, weight 2e-6) says nothing about bias.
    exp = pl.col("w_share") * total
    out = out.with_columns((pl.col("outlets") / exp).alias("raw_ratio"),
                           (pl.col("outlets") / pl.max_horizontal(exp, pl.lit(rz["small_country_min_expected"])))
                           .alias("ratio"))
    rho = spearman(out["outlets"].to_numpy().astype(np.float64), out["w"].to_numpy())
    small_w = w.filter(pl.col("population") < rz["small_country_population"])["w_share"].sum()
    small = out.filter(pl.col("population") < rz["small_country_population"]).sort(
        "ratio", "country_iso", descending=[True, False])
    small_all = float(small["outlets"].sum() / total / small_w) if small_w else 0.0
    return {
        "group_shares": share,
        "core_group_share": core,
        "max_rare_mcc_share": rare_max,
        "max_rare_mcc": int(rare["mcc"][0]) if rare.height else None,
        "digital_cnp_share": dig_cnp,
        "digital_merchants": dig.height,
        "spearman_outlets_vs_card_market": rho,
        "countries_with_outlets": out.height,
        "max_small_country_ratio": float(small["ratio"][0]) if small.height else 0.0,
        "max_small_country": small["country_iso"][0] if small.height else None,
        "max_small_country_outlets": int(small["outlets"][0]) if small.height else 0,
        "max_small_country_raw_ratio": float(small["raw_ratio"].max()) if small.height else 0.0,
        "small_countries_ratio": small_all,
    }


def gate(f: dict, rz: dict, preset: str, chk, out: list) -> None:
    """Corridor rows + checks for the realism figures; severity from rz['severity'][preset]."""
    sev = rz["severity"][preset]

    def add(name, value, ok, bounds, detail=""):
        ok = bool(ok) and value == value                    # NaN never passes
        out.append({"metric": name, "value": None if value != value else round(float(value), 10),
                    "bounds": bounds, "pass": ok, "severity": sev})
        chk.add(f"corridor_{name}", ok, figure=value if value == value else None, threshold=bounds,
                detail=detail, severity=sev)

    add("core_group_share", f["core_group_share"], f["core_group_share"] >= rz["min_core_group_share"],
        [rz["min_core_group_share"], None], "+".join(rz["core_groups"]))
    add("max_rare_mcc_share", f["max_rare_mcc_share"], f["max_rare_mcc_share"] <= rz["max_rare_mcc_share"],
        [None, rz["max_rare_mcc_share"]], f"mcc {f['max_rare_mcc']}")
    add("digital_cnp_share", f["digital_cnp_share"], f["digital_cnp_share"] >= rz["min_digital_cnp_share"],
        [rz["min_digital_cnp_share"], None], f"{f['digital_merchants']} merchants")
    add("spearman_outlets_vs_card_market", f["spearman_outlets_vs_card_market"],
        f["spearman_outlets_vs_card_market"] >= rz["min_spearman_outlets_vs_card_market"],
        [rz["min_spearman_outlets_vs_card_market"], None], f"{f['countries_with_outlets']} countries")
    add("max_small_country_ratio", f["max_small_country_ratio"],
        f["max_small_country_ratio"] <= rz["max_small_country_ratio"], [None, rz["max_small_country_ratio"]],
        f"{f['max_small_country']} ({f['max_small_country_outlets']} outlets; raw ratio "
        f"{f['max_small_country_raw_ratio']:.3g})")
    add("small_countries_ratio", f["small_countries_ratio"], f["small_countries_ratio"] <= rz["max_small_country_ratio"],
        [None, rz["max_small_country_ratio"]], f"all countries under {rz['small_country_population']} people")
