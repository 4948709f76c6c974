"""Authored priors of 1A.S0: the merchant mix (MCC group shares, channel by group) and the
card-market weight of each home country. Pure functions over arrays; S0 samples from them and
S9 measures the world against them (config/1A/merchant_mix.yaml, config/1A/card_market.yaml).
"""
from __future__ import annotations

import numpy as np
import polars as pl

from engine.core import detmath
from engine.core.errors import EngineFailure

MIX_FILE = "config/1A/merchant_mix.yaml"
OTHER = "other"


def _bad(msg: str, field: str, code: str) -> EngineFailure:
    return EngineFailure(f"{code}.MIX_INVALID", msg, {"file": MIX_FILE, "field": field})


def mix_table(mix: dict, mcc_codes: np.ndarray, code: str = "1A.S0") -> pl.DataFrame:
    """One row per MCC of the reference table: mcc, group, weight (merchant share), p_cnp.

    A code named by two groups, or named but absent from the table, is an error; the codes no
    group names share what the groups leave, evenly."""
    table = set(int(c) for c in mcc_codes)
    rows: dict[int, tuple[str, float, float]] = {}
    named_total = 0.0
    for name, g in sorted(mix["groups"].items()):              # per group (~20), not per row
        if "code_weights" in g:
            cw = {int(k): float(v) for k, v in g["code_weights"].items()}
        else:
            cw = {int(c): 1.0 for c in g["codes"]}
        missing = sorted(set(cw) - table)
        if missing:
            raise _bad(f"group {name} names MCC {missing[0]}, which is not in results/reference/mcc_codes",
                       f"groups.{name}", code)
        total = sum(cw.values())
        for c, w in sorted(cw.items()):
            if c in rows:
                raise _bad(f"MCC {c} is in groups {rows[c][0]} and {name}", f"groups.{name}", code)
            rows[c] = (name, g["share"] * w / total, g["p_cnp"])
        named_total += g["share"]
    rest = sorted(table - set(rows))
    left = 1.0 - named_total
    if left < -1e-9 or (left > 1e-9 and not rest):
        raise _bad(f"group shares sum to {named_total:.6f}; they must leave a share >= 0 for `other` "
                   "(and sum to 1 when every code is named)", "groups", code)
    for c in rest:
        rows[c] = (OTHER, max(left, 0.0) / len(rest), mix[OTHER]["p_cnp"])
    codes = np.array(sorted(rows), dtype=np.int64)
    return pl.DataFrame({"mcc": codes, "group": [rows[c][0] for c in codes.tolist()],
                         "weight": [rows[c][1] for c in codes.tolist()],
                         "p_cnp": [rows[c][2] for c in codes.tolist()]})


def card_use(gdp_pc: np.ndarray, anchors: list) -> np.ndarray:
    """Share of adults paying merchants digitally: linear in log GDP per capita between anchors."""
    a = np.array(sorted(anchors), dtype=np.float64)
    return np.interp(detmath.log(gdp_pc), detmath.log(a[:, 0]), a[:, 1])


def card_market_weights(cref: pl.DataFrame, cm: dict) -> np.ndarray:
    """weight(c) = population * min(gdp_pc, cap) * card_use(gdp_pc), in country_ref row order."""
    pop = cref["population"].to_numpy().astype(np.float64)
    gdp = cref["gdp_pc_usd"].to_numpy().astype(np.float64)
    return pop * np.minimum(gdp, cm["gdp_pc_cap_usd"]) * card_use(gdp, cm["card_use_anchors"])


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation with average ranks for ties."""
    if len(x) < 2:
        return float("nan")
    rx = pl.Series(x).rank("average").to_numpy()
    ry = pl.Series(y).rank("average").to_numpy()
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])
