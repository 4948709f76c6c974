"""3B.S1 classification: virtual mode per merchant from (mcc, channel) rules (RNG-free), and the
offline authoring law of config/3B/mcc_channel_rules.yaml.

Lookup: exact (mcc, channel); virtual -> VIRTUAL_ONLY, hybrid -> HYBRID, physical -> NON_VIRTUAL, all
RULE_MATCH; no rule -> NON_VIRTUAL / NO_RULE_MATCH. rule_id = "mcc=<mcc>/<cp|cnp>". An optional governed
override list (merchant_id, accept|deny) wins over the rules (OVERRIDE_ACCEPT -> VIRTUAL_ONLY,
OVERRIDE_DENY -> NON_VIRTUAL); v1 ships it empty.

Authoring (chapter B2): score each MCC by keyword hits in its ISO 18245 description; take the smallest
top-scoring set whose expected share among card-not-present merchants (1A's MCC draw weights x p_cnp) is
in [0.12, 0.20] (fallback [0.04, 0.20]) as `virtual` on card_not_present, the next 2-4 as `hybrid`;
card_present is always physical.
"""
from __future__ import annotations

import numpy as np
import polars as pl

from engine.core.errors import EngineFailure

MODES = ("NON_VIRTUAL", "HYBRID", "VIRTUAL_ONLY")
REASONS = ("RULE_MATCH", "NO_RULE_MATCH", "OVERRIDE_ACCEPT", "OVERRIDE_DENY")
CHANNEL_TAG = {"card_present": "cp", "card_not_present": "cnp"}
_MODE_OF = {"virtual": "VIRTUAL_ONLY", "hybrid": "HYBRID", "physical": "NON_VIRTUAL"}

# keyword weights for the authoring score (assumption: our reading of which descriptions mean "sold online")
KEYWORDS = {"digital": 4, "online": 4, "internet": 4, "streaming": 4, "subscription": 3, "hosting": 3,
            "software": 3, "information services": 3, "information retrieval": 3, "network": 2, "telecom": 2,
            "telephone": 2, "direct marketing": 2, "mail order": 3, "pay television": 2, "catalogue": 1,
            "data processing": 2, "betting": 1, "computer": 1}
NEGATIVE = {"shop": -3, "outlet": -3, "repair": -3, "rental": -2, "arcade": -3, "establishment": -2,
            "equipment": -2, "key-entry": -1, "insurance": -1}


def rules_frame(doc: dict, code: str = "3B.S0") -> pl.DataFrame:
    """mcc_channel_rules.yaml -> (mcc i32, channel, decision); duplicates raise `<code>.RULE_DUPLICATE`."""
    d = pl.DataFrame([(int(r["mcc"]), r["channel"], r["decision"]) for r in doc["rules"]],
                     schema={"mcc": pl.Int32, "channel": pl.String, "decision": pl.String}, orient="row")
    dup = d.filter(pl.struct("mcc", "channel").is_duplicated())
    if dup.height:
        raise EngineFailure(f"{code}.RULE_DUPLICATE", "two rules for one (mcc, channel)",
                            {"mcc": int(dup["mcc"][0]), "channel": dup["channel"][0],
                             "file": "config/3B/mcc_channel_rules.yaml"})
    return d


def classify(merchants: pl.DataFrame, rules: pl.DataFrame, version: str, overrides: pl.DataFrame | None = None,
             code: str = "3B.S1") -> pl.DataFrame:
    """virtual_classification_3B: one row per merchant, sorted by merchant_id."""
    m = merchants.select("merchant_id", "mcc", pl.col("channel").cast(pl.String)).sort("merchant_id")
    bad = m.filter(pl.col("mcc").is_null() | pl.col("channel").is_null())
    if bad.height:
        raise EngineFailure(f"{code}.CLASS_ATTR_MISSING", "merchant lacks mcc or channel", {"merchant_id": bad["merchant_id"][0]})
    d = m.join(rules, on=["mcc", "channel"], how="left", maintain_order="left")
    mode = pl.col("decision").replace_strict(_MODE_OF, default="NON_VIRTUAL")
    reason = pl.when(pl.col("decision").is_null()).then(pl.lit("NO_RULE_MATCH")).otherwise(pl.lit("RULE_MATCH"))
    rule_id = pl.when(pl.col("decision").is_null()).then(pl.lit(None, pl.String)).otherwise(
        pl.format("mcc={}/{}", "mcc", pl.col("channel").replace_strict(CHANNEL_TAG, default="?")))
    d = d.with_columns(mode.alias("virtual_mode"), reason.alias("decision_reason"), rule_id.alias("rule_id"))
    if overrides is not None and overrides.height:
        o = overrides.select("merchant_id", pl.col("decision").alias("_ov"))
        d = d.join(o, on="merchant_id", how="left", maintain_order="left").with_columns(
            pl.when(pl.col("_ov") == "accept").then(pl.lit("VIRTUAL_ONLY")).when(pl.col("_ov") == "deny")
            .then(pl.lit("NON_VIRTUAL")).otherwise("virtual_mode").alias("virtual_mode"),
            pl.when(pl.col("_ov") == "accept").then(pl.lit("OVERRIDE_ACCEPT")).when(pl.col("_ov") == "deny")
            .then(pl.lit("OVERRIDE_DENY")).otherwise("decision_reason").alias("decision_reason"))
    return d.select(
        "merchant_id", (pl.col("virtual_mode") != "NON_VIRTUAL").alias("is_virtual"),
        pl.col("virtual_mode").cast(pl.Enum(MODES)), pl.col("decision_reason").cast(pl.Enum(REASONS)), "rule_id",
        pl.when(pl.col("rule_id").is_null()).then(pl.lit(None, pl.String)).otherwise(pl.lit(version)).alias("rule_version"),
        pl.lit(version).alias("source_policy_version"))


# ---------------------------------------------------------------- authoring

def mcc_scores(mcc_codes: pl.DataFrame) -> pl.DataFrame:
    d = mcc_codes.with_columns(pl.col("description").str.to_lowercase().alias("_d"))
    score = pl.lit(0)
    for k, w in {**KEYWORDS, **NEGATIVE}.items():
        score = score + pl.when(pl.col("_d").str.contains(k, literal=True)).then(w).otherwise(0)
    return d.select("mcc", "description", score.alias("score"))


def author_rules(mcc_codes: pl.DataFrame, cnp_mass: np.ndarray, band=(0.12, 0.20), fallback=(0.04, 0.20),
                 n_hybrid: int = 3) -> tuple[pl.DataFrame, dict]:
    """-> (rules rows mcc/channel/decision sorted, summary). `cnp_mass[i]` is MCC i's expected count of
    card-not-present merchants (any scale)."""
    s = mcc_scores(mcc_codes).with_columns(pl.Series("cnp", cnp_mass / cnp_mass.sum()))
    cand = s.filter(pl.col("score") > 0).sort(["score", "mcc"], descending=[True, False])
    chosen, share = [], 0.0
    for lo, hi in (band, fallback):
        chosen, share = [], 0.0
        for mcc, c in zip(cand["mcc"], cand["cnp"]):        # a few dozen candidates, authored offline
            if share >= lo:
                break
            if share + c <= hi:
                chosen.append(mcc)
                share += c
        if share >= lo:
            break
    hybrid = []
    for mcc, c in zip(cand["mcc"], cand["cnp"]):
        if len(hybrid) == n_hybrid:
            break
        if mcc not in chosen and share + c <= fallback[1]:
            hybrid.append(mcc)
            share += c
    dec = pl.when(pl.col("mcc").is_in(chosen)).then(pl.lit("virtual")).when(pl.col("mcc").is_in(hybrid)) \
        .then(pl.lit("hybrid")).otherwise(pl.lit("physical"))
    cnp = s.select("mcc", pl.lit("card_not_present").alias("channel"), dec.alias("decision"))
    cp = s.select("mcc", pl.lit("card_present").alias("channel"), pl.lit("physical").alias("decision"))
    rules = pl.concat([cnp, cp]).sort("mcc", "channel")
    return rules, {"virtual": chosen, "hybrid": hybrid, "expected_cnp_share": share}
