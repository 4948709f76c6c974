"""Author config/3B/mcc_channel_rules.yaml (offline, run once, output committed). Run from the repo root.

Sources: iso18245 MCC descriptions (keyword score, engine/seg3B/classify.py) and 1A's merchant mix
(config/1A/merchant_mix.yaml through engine.seg1A.mix.mix_table: MCC shares and p_cnp, the law 1A.S0 draws
merchants by) for the expected card-not-present share. Hybrids are added only while the virtual+hybrid
share stays <= HYBRID_CAP, below the 0.20 corridor of config/3B/virtual_validation.yaml, so a world's sample
(about 500 CNP merchants on dev) stays inside it.
"""
from importlib import metadata

import yaml

from engine.refdata.tables import mcc_table
from engine.seg1A.mix import mix_table
from engine.seg3B.classify import author_rules

HYBRID_CAP = 0.16

mix = yaml.safe_load(open("config/1A/merchant_mix.yaml"))
mcc = mcc_table()
mt = mcc.select("mcc").join(mix_table(mix, mcc["mcc"].to_numpy()).select("mcc", "weight", "p_cnp"), on="mcc",
                            how="left")
mass = (mt["weight"] * mt["p_cnp"]).fill_null(0.0).to_numpy()
rules, info = author_rules(mcc, mass, fallback=(0.04, HYBRID_CAP))
desc = dict(zip(mcc["mcc"].to_list(), mcc["description"].to_list()))
head = [
    "# 3B.S1 virtual classification rules: one rule per (mcc, channel); card_present is always physical.",
    f"# Source: iso18245 {metadata.version('iso18245')} descriptions scored by keyword (engine/seg3B/classify.py);",
    "# expected card-not-present share from config/1A/merchant_mix.yaml (MCC shares x p_cnp, 1A.S0's law);",
    f"# hybrids only while the virtual+hybrid share stays <= {HYBRID_CAP} (corridor 0.04..0.20).",
    f"# virtual: {info['virtual']}; hybrid: {info['hybrid']}; expected virtual+hybrid share of CNP merchants "
    f"{info['expected_cnp_share']:.3f}.",
    "# Authored by scripts/author_3B_mcc_rules.py; do not edit by hand.",
    "version: v1.1.0", "overrides: []", "rules:"]
lines = [f"  - {{mcc: \"{m:04d}\", channel: {c}, decision: {d}}}" + (f"   # {desc[m][:60]}" if d != "physical" else "")
         for m, c, d in rules.iter_rows()]
open("config/3B/mcc_channel_rules.yaml", "w").write("\n".join(head + lines) + "\n")
print(info)
