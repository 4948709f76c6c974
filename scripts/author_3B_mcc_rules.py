"""Author config/3B/mcc_channel_rules.yaml (offline, run once, output committed). Run from the repo root.

Sources: iso18245 MCC descriptions (keyword score, engine/seg3B/classify.py) and 1A's universe policy
(config/1A/universe.yaml: MCC draw weights and p_cnp) for the expected card-not-present share.
"""
from importlib import metadata

import yaml

from engine.refdata.tables import mcc_table
from engine.seg1A.s0_universe import mcc_weights, p_cnp
from engine.seg3B.classify import author_rules

uni = yaml.safe_load(open("config/1A/universe.yaml"))
mcc = mcc_table()
codes = mcc["mcc"].to_numpy()
mass = mcc_weights(codes, uni["mcc"]["range_boosts"]) * p_cnp(codes, uni["channel"])
rules, info = author_rules(mcc, mass)
desc = dict(zip(mcc["mcc"].to_list(), mcc["description"].to_list()))
head = [
    "# 3B.S1 virtual classification rules: one rule per (mcc, channel); card_present is always physical.",
    f"# Source: iso18245 {metadata.version('iso18245')} descriptions scored by keyword (engine/seg3B/classify.py);",
    "# expected card-not-present share from config/1A/universe.yaml (MCC weights x p_cnp).",
    f"# virtual: {info['virtual']}; hybrid: {info['hybrid']}; expected virtual+hybrid share of CNP merchants "
    f"{info['expected_cnp_share']:.3f}.",
    "# Authored by scripts/author_3B_mcc_rules.py; do not edit by hand.",
    "version: v1.0.0", "overrides: []", "rules:"]
lines = [f"  - {{mcc: \"{m:04d}\", channel: {c}, decision: {d}}}" + (f"   # {desc[m][:60]}" if d != "physical" else "")
         for m, c, d in rules.iter_rows()]
open("config/3B/mcc_channel_rules.yaml", "w").write("\n".join(head + lines) + "\n")
print(info)
