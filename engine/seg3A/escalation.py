"""3A.S1: which (merchant, country) pairs spread over several zones (RNG-free).

Ladder (chapter A3 S1): a structural guard first -- a pair whose country has <= 1 zone is
`forced_monolithic` whatever the rules say (so such pairs can never escalate) -- then the policy's
rules in file order, first match wins; no match -> the theta_mix hash-coin
hu("3A.S1.theta_mix", m, c, parameter_hash) < theta_mix -> default_escalation, else legacy_default.
Smoothing flips `below_min_sites` pairs in many-zone countries with
hu("3A.S1.smooth_band", m, c, parameter_hash) < p(zc, site_count). All columnar (Polars).
"""
from __future__ import annotations

import polars as pl

from engine.core.errors import EngineFailure
from engine.core.hash_uniform import hash_uniform

ESCALATING = ("forced_escalation", "default_escalation")
REASONS = ("forced_monolithic", "below_min_sites", "legacy_default", "forced_escalation", "default_escalation")
_OPS = {"site_count_lt": ("site_count", "lt"), "site_count_ge": ("site_count", "ge"),
        "zone_count_country_le": ("zone_count_country", "le"), "zone_count_country_ge": ("zone_count_country", "ge")}


def site_counts(outlets: pl.DataFrame) -> pl.DataFrame:
    """Domain D: (merchant_id, legal_country_iso, site_count) from outlet rows, sorted."""
    return outlets.group_by("merchant_id", "legal_country_iso").agg(pl.len().cast(pl.Int32).alias("site_count")) \
        .with_columns(pl.col("legal_country_iso").cast(pl.String)).sort("merchant_id", "legal_country_iso")


def _rule_expr(rule: dict) -> pl.Expr:
    key = next(k for k in rule if k != "reason")
    col, op = _OPS[key]
    c, v = pl.col(col), rule[key]
    return {"lt": c < v, "ge": c >= v, "le": c <= v}[op]


def escalation_queue(outlets: pl.DataFrame, zone_counts: pl.DataFrame, policy: dict, parameter_hash: str,
                     code: str = "3A.S1") -> pl.DataFrame:
    """s1_escalation_queue: one row per (merchant, country) of `outlets`, sorted by that key.

    `zone_counts`: (country_iso, zone_count) from the prior pack; a country missing there raises
    `<code>.ZONE_UNIVERSE_MISSING`.
    """
    d = site_counts(outlets).join(zone_counts.rename({"country_iso": "legal_country_iso", "zone_count":
                                                      "zone_count_country"}), on="legal_country_iso", how="left",
                                  maintain_order="left")
    miss = d.filter(pl.col("zone_count_country").is_null())
    if miss.height:
        raise EngineFailure(f"{code}.ZONE_UNIVERSE_MISSING", "country has no zones in the prior pack",
                            {"country": miss["legal_country_iso"][0], "file": "config/3A/country_zone_alphas.yaml"})
    d = d.with_columns(pl.col("zone_count_country").cast(pl.Int16))
    m, c = d["merchant_id"], d["legal_country_iso"]
    coin = hash_uniform("3A.S1.theta_mix", m, c, parameter_hash) if d.height else []
    d = d.with_columns(pl.Series("_u_mix", coin, pl.Float64))
    reason = pl.when(pl.col("zone_count_country") <= 1).then(pl.lit("forced_monolithic"))
    for rule in policy["rules"]:
        reason = reason.when(_rule_expr(rule)).then(pl.lit(rule["reason"]))
    reason = reason.when(pl.col("_u_mix") < policy["theta_mix"]).then(pl.lit("default_escalation")) \
        .otherwise(pl.lit("legacy_default"))
    d = d.with_columns(reason.alias("decision_reason"))
    sm = policy["s1_smoothing"]
    if sm["enabled"] and d.height:
        zc = pl.col("zone_count_country").cast(pl.Float64)
        band = ((zc - sm["zone_count_min"]) / max(sm["zone_count_max"] - sm["zone_count_min"], 1)).clip(0.0, 1.0)
        p = sm["zone_escalation_prob_min"] + (sm["zone_escalation_prob_max"] - sm["zone_escalation_prob_min"]) * band \
            + pl.min_horizontal(sm["site_count_slope"] * (pl.col("site_count") - 1), pl.lit(sm["site_count_cap"]))
        p = pl.when(zc >= sm["zone_count_min"]).then(p).otherwise(0.0)
        d = d.with_columns(pl.Series("_u_sm", hash_uniform("3A.S1.smooth_band", m, c, parameter_hash)))
        flip = (pl.col("decision_reason") == "below_min_sites") & (pl.col("zone_count_country") > 1) & (pl.col("_u_sm") < p)
        d = d.with_columns(pl.when(flip).then(pl.lit("default_escalation")).otherwise("decision_reason")
                           .alias("decision_reason"))
    return d.select(
        "merchant_id", "legal_country_iso", "site_count", "zone_count_country",
        pl.col("decision_reason").is_in(ESCALATING).alias("is_escalated"),
        pl.col("decision_reason").cast(pl.Enum(REASONS)),
        pl.lit(policy["version"]).alias("mixture_policy_version"),
        (pl.col("zone_count_country") > 1).alias("eligible_for_escalation"))
