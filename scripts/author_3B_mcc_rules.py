"""Author config/3B/mcc_channel_rules.yaml (offline, run once, output committed). Run from the repo root.

Sources: iso18245 MCC descriptions (keyword score, engine/seg3B/classify.py) and 1A's merchant mix
(config/1A/merchant_mix.yaml: merchant share and p_cnp per MCC) for the expected card-not-present share.
"""
from importlib import metadata

import yaml

from engine.refdata.tables import mcc_table
from engine.seg1A.mix import mix_table
from engine.seg3B.classify import author_rules

mix = yaml.safe_load(open("config/1A/merchant_mix.yaml"))
mcc = mcc_table().sort("mcc")
mt = mix_table(mix, mcc["mcc"].to_numpy())              # sorted by mcc, like `mcc`
mass = (mt["weight"] * mt["p_cnp"]).to_numpy()
rules, info = author_rules(mcc, mass)
desc = dict(zip(mcc["mcc"].to_list(), mcc["description"].to_list()))
head = [
    "# 3B.S1 virtual classification rules: one rule per (mcc, channel); card_present is always physical.",
    f"# Source: iso18245 {metadata.version('iso18245')} descriptions scored by keyword (engine/seg3B/classify.py);",
    "# expected card-not-present share from config/1A/merchant_mix.yaml (merchant share x p_cnp per MCC).",
    f"# virtual: {info['virtual']}; hybrid: {info['hybrid']}; expected virtual+hybrid share of CNP merchants "
    f"{info['expected_cnp_share']:.3f}.",
    "# Authored by scripts/author_3B_mcc_rules.py; do not edit by hand.",
    "version: v1.0.0", "overrides: []", "rules:"]
lines = [f"  - {{mcc: \"{m:04d}\", channel: {c}, decision: {d}}}" + (f"   # {desc[m][:60]}" if d != "physical" else "")
         for m, c, d in rules.iter_rows()]
open("config/3B/mcc_channel_rules.yaml", "w").write("\n".join(head + lines) + "\n")
print(info)
