"""1A.S3: ordered cross-border candidate country set (RNG-free; the only inter-country order)."""
from __future__ import annotations

import numpy as np
import polars as pl

from engine.core import datasets
from engine.core.context import RunContext
from engine.core.errors import EngineFailure

from .common import mcc_in, policy, report_path, state_report

CODE = "1A.S3"
PRECEDENCE = ("DENY", "ALLOW", "CLASS", "LEGAL", "THRESHOLD", "DEFAULT")
FILE = "config/1A/crossborder.yaml"


def _invalid(msg: str, **ctx) -> EngineFailure:
    return EngineFailure(f"{CODE}.LADDER_INVALID", msg, {"file": FILE, **ctx})


def ordered_rules(ladder: dict, sets: dict, countries: set[str]) -> list[dict]:
    """Rules in precedence order (class, priority, rule_id), after the policy checks."""
    rules = ladder["rules"]
    ids = [r["rule_id"] for r in rules]
    if len(set(ids)) != len(ids):
        raise _invalid("duplicate rule_id", rule=sorted(i for i in ids if ids.count(i) > 1)[0])
    if sum(r["precedence"] == "DEFAULT" for r in rules) != 1:
        raise _invalid("the ladder needs exactly one DEFAULT rule")
    for r in rules:
        for s in r.get("admit_sets", []) + r.get("deny_sets", []):
            if s not in sets:
                raise _invalid(f"unknown country set {s}", rule=r["rule_id"])
    for name, members in sets.items():
        unknown = sorted(set(members) - countries)
        if unknown:
            raise EngineFailure(f"{CODE}.UNKNOWN_COUNTRY", f"country set {name} names {unknown[0]}, "
                                "which is not in country_ref", {"file": FILE, "set": name})
    return sorted(rules, key=lambda r: (PRECEDENCE.index(r["precedence"]), r["priority"], r["rule_id"]))


def predicate(p: dict, m: dict, sets: dict) -> np.ndarray:
    """Vectorised predicate over all merchants (`m` holds numpy columns)."""
    op = p["op"]
    n = len(m["n"])
    if op == "TRUE":
        return np.ones(n, dtype=bool)
    if op == "AND":
        out = np.ones(n, dtype=bool)
        for a in p.get("args", []):
            out &= predicate(a, m, sets)
        return out
    if op == "NOT":
        return ~predicate(p["arg"], m, sets)
    if op == "N_GE":
        return m["n"] >= p["n"]
    if op == "IN_SET":
        if p["set"] not in sets:
            raise _invalid(f"unknown country set {p['set']} in predicate")
        return np.isin(m["home"], sets[p["set"]])
    if op == "CHANNEL_IN":
        return np.isin(m["channel"], p["channels"])
    if op == "MCC_IN":
        return mcc_in(m["mcc"], p.get("codes", []), p.get("ranges", []))
    raise _invalid(f"unknown predicate op {op}")


def evaluate_ladder(rules: list[dict], m: dict, sets: dict) -> tuple[np.ndarray, np.ndarray]:
    """(eligible, fired) where fired[i, j] says rule j fired for merchant i."""
    n = len(m["n"])
    fired = np.column_stack([predicate(r["predicate"], m, sets) for r in rules]) if rules else np.zeros((n, 0), bool)
    decided = np.zeros(n, dtype=bool)
    eligible = np.zeros(n, dtype=bool)
    for j, r in enumerate(rules):   # already in precedence order
        cls = r["precedence"]
        if cls == "DENY" or (cls == "DEFAULT" and r.get("decision", "deny") == "deny"):
            hit = fired[:, j] & ~decided
            eligible[hit] = False
        elif cls == "ALLOW" or cls == "DEFAULT":
            hit = fired[:, j] & ~decided
            eligible[hit] = True
        else:
            continue                 # CLASS/LEGAL/THRESHOLD carry no decision in this ladder
        decided |= hit
    return eligible, fired


def candidate_set(merchants: pl.DataFrame, rules: list[dict], sets: dict) -> pl.DataFrame:
    """merchants: merchant_id, home_country_iso, channel, mcc, n (N, 1 for single-site), is_eligible."""
    m = {"n": merchants["n"].to_numpy(), "home": merchants["home_country_iso"].to_numpy(),
         "channel": merchants["channel"].to_numpy(), "mcc": merchants["mcc"].to_numpy().astype(np.int64)}
    ladder_ok, fired = evaluate_ladder(rules, m, sets)
    multi = merchants["n"].to_numpy() >= 2
    eligible = merchants["is_eligible"].to_numpy() & ladder_ok & multi
    allow = [j for j, r in enumerate(rules) if r["precedence"] == "ALLOW"]
    rows, cols = np.nonzero(fired[:, allow] & eligible[:, None]) if allow else (np.array([], int),) * 2
    rule_tab = pl.DataFrame({
        "rule_pos": np.array(allow, dtype=np.int64),
        "admit": [sorted({c for s in rules[j].get("admit_sets", []) for c in sets[s]}) for j in allow],
        "deny": [sorted({c for s in rules[j].get("deny_sets", []) for c in sets[s]}) for j in allow],
        "reason": [rules[j].get("reason_code", rules[j]["rule_id"]) for j in allow],
        "tags": [list(rules[j].get("row_tags", [])) for j in allow],
    }, schema={"rule_pos": pl.Int64, "admit": pl.List(pl.String), "deny": pl.List(pl.String),
               "reason": pl.String, "tags": pl.List(pl.String)})
    ids = merchants["merchant_id"].to_numpy()
    hits = pl.DataFrame({"merchant_id": ids[rows], "rule_pos": np.array(allow, dtype=np.int64)[cols]}) \
        .join(rule_tab, on="rule_pos").join(merchants.select("merchant_id", "home_country_iso"), on="merchant_id")
    denied = hits.select("merchant_id", pl.col("deny").alias("country_iso")).explode("country_iso").drop_nulls()
    foreign = (hits.explode("admit").rename({"admit": "country_iso"}).drop_nulls("country_iso")
               .filter(pl.col("country_iso") != pl.col("home_country_iso"))
               .join(denied, on=["merchant_id", "country_iso"], how="anti")
               .group_by("merchant_id", "country_iso")
               .agg(pl.col("rule_pos").min().alias("admission"),
                    pl.col("reason").unique().sort().alias("reason_codes"),
                    pl.col("tags").list.explode(keep_nulls=False, empty_as_null=False).unique().sort().alias("filter_tags"))
               .sort("merchant_id", "admission", "country_iso")
               .with_columns((pl.col("country_iso").cum_count().over("merchant_id")).cast(pl.Int32)
                             .alias("candidate_rank"), pl.lit(False).alias("is_home")))
    home = merchants.select(
        "merchant_id", pl.col("home_country_iso").alias("country_iso"), pl.lit(0, pl.Int32).alias("candidate_rank"),
        pl.lit(True).alias("is_home"), pl.lit(["HOME"]).alias("reason_codes"), pl.lit(["HOME"]).alias("filter_tags"))
    cols_out = ["merchant_id", "country_iso", "candidate_rank", "is_home", "reason_codes", "filter_tags"]
    return pl.concat([home, foreign.select(cols_out)]).sort("merchant_id", "candidate_rank")


def run(ctx: RunContext) -> None:
    rep = state_report("S3")
    cb = policy(ctx, "crossborder", "S3")
    mids = datasets.read(ctx, "merchant_ids", CODE)
    feats = datasets.read(ctx, "merchant_features", CODE)
    hurdle = datasets.read(ctx, "s1_hurdle", CODE)
    nb = datasets.read(ctx, "s2_nb_outlets", CODE)
    cref = datasets.read(ctx, "country_ref", CODE)
    merchants = (mids.join(feats.select("merchant_id", "is_eligible"), on="merchant_id", maintain_order="left")
                 .join(hurdle.select("merchant_id", "is_multi"), on="merchant_id", maintain_order="left")
                 .join(nb.select("merchant_id", "n_outlets"), on="merchant_id", how="left", maintain_order="left"))
    gap = merchants.filter(pl.col("is_multi") & pl.col("n_outlets").is_null())
    if gap.height:
        raise EngineFailure(f"{CODE}.GATE_MISSING", "multi-site merchant has no N from S2",
                            {"merchant_id": gap["merchant_id"][0]})
    merchants = merchants.with_columns(pl.col("n_outlets").fill_null(1).alias("n"))
    rules = ordered_rules(cb["ladder"], cb["country_sets"], set(cref["country_iso"]))
    cands = candidate_set(merchants, rules, cb["country_sets"])
    datasets.publish(ctx, cands, "s3_candidate_set", CODE)
    rep.count(rows=cands.height, merchants=cands["merchant_id"].n_unique(),
              foreign_rows=int((~cands["is_home"]).sum()))
    rep.rng(None)
    rep.write(report_path(ctx, "S3"))
