"""3B validation helpers (chapter B4): realism checks V01-V11, corridors and structural checks.

Check rows are {check_id, status PASS|WARN|FAIL|INSUFFICIENT_DATA, metric, threshold}. A realism metric
over fewer than `min_virtual_merchants` virtual merchants is INSUFFICIENT_DATA (counts as PASS).
Vectorised numpy/Polars; the pairwise JS divergence uses the chapter's 2,000 deterministic pairs.
"""
from __future__ import annotations

import numpy as np
import polars as pl

from engine.core.hash_uniform import hash_uniform

from . import kernels


def _row(check_id, ok, metric, threshold, severity="FAIL"):
    return {"check_id": check_id, "status": "PASS" if ok else severity,
            "metric": None if metric is None else float(metric), "threshold": threshold}


def _cv(x: np.ndarray) -> float:
    x = x.astype(np.float64)
    return float(x.std() / x.mean()) if len(x) and x.mean() > 0 else 0.0     # no virtual merchant: 0


def country_js_median(cat: pl.DataFrame, n_pairs: int) -> float:
    """Median base-2 Jensen-Shannon divergence between merchants' country weight distributions over pairs
    (i, (i+k) mod n), k = 1 + ⌊hu("3B.S5.js", i)·(n−1)⌋, i = 0..n_pairs−1 (mod n)."""
    per = cat.group_by("merchant_id", "country_iso").agg(pl.col("edge_weight").sum().alias("w")).sort("merchant_id")
    mids = per["merchant_id"].unique().sort()
    n = len(mids)
    if n < 2:
        return float("nan")
    i = np.arange(n_pairs) % n
    k = 1 + np.floor(hash_uniform("3B.S5.js", np.arange(n_pairs)) * (n - 1)).astype(np.int64)
    j = (i + k) % n
    rank = pl.DataFrame({"merchant_id": mids, "_r": np.arange(n)})
    cc = per["country_iso"].unique().sort()
    cidx = pl.DataFrame({"country_iso": cc, "_c": np.arange(len(cc))})
    p = per.join(rank, on="merchant_id").join(cidx, on="country_iso")
    dense = np.zeros((n, len(cc)))
    dense[p["_r"].to_numpy(), p["_c"].to_numpy()] = p["w"].to_numpy()
    dense /= dense.sum(axis=1, keepdims=True)
    a, b = dense[i], dense[j]
    mid = 0.5 * (a + b)

    def kl(x, y):
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(x > 0, x * np.log2(np.where(x > 0, x, 1) / np.where(y > 0, y, 1)), 0.0)
        return t.sum(axis=1)
    return float(np.median(0.5 * kl(a, mid) + 0.5 * kl(b, mid)))


def realism(classification: pl.DataFrame, merchants: pl.DataFrame, settle: pl.DataFrame, cat: pl.DataFrame,
            alias_max_abs_delta: float, cfg: dict) -> list[dict]:
    """V01-V11 and the classification / edge-count corridors."""
    r = cfg["realism_checks"]
    sev = "FAIL" if cfg["realism_enforcement_mode"] == "enforce" else "WARN"
    virt = classification.filter("is_virtual")
    enough = virt.height >= cfg["min_virtual_merchants"]
    out = []

    def corridor(cid, metric, ok, thr):
        if not enough:
            out.append({"check_id": cid, "status": "INSUFFICIENT_DATA", "metric": None, "threshold": thr})
        else:
            out.append(_row(cid, ok(metric), metric, thr, sev))

    per = cat.group_by("merchant_id").agg(pl.len().alias("n"), pl.col("country_iso").n_unique().alias("nc"),
                                          pl.col("edge_weight").max().alias("top1")).sort("merchant_id")
    corridor("V01_EDGE_COUNT_CV", _cv(per["n"].to_numpy()), lambda m: m >= r["edge_count_cv_min"], r["edge_count_cv_min"])
    corridor("V02_COUNTRY_COUNT_CV", _cv(per["nc"].to_numpy()), lambda m: m >= r["country_count_cv_min"],
             r["country_count_cv_min"])
    t1 = float(per["top1"].median()) if per.height else 0.0
    corridor("V03_TOP1_EDGE_WEIGHT_MEDIAN", t1,
             lambda m: r["top1_edge_weight_median_min"] <= m <= r["top1_edge_weight_median_max"],
             [r["top1_edge_weight_median_min"], r["top1_edge_weight_median_max"]])
    corridor("V04_COUNTRY_JS_MEDIAN", country_js_median(cat, cfg["js_pairs"]) if enough else None,
             lambda m: m >= r["country_js_median_min"], r["country_js_median_min"])
    s = settle.select("merchant_id", pl.col("settlement_country_iso").cast(pl.String), pl.col("lat_deg").alias("s_lat"),
                      pl.col("lon_deg").alias("s_lon"))
    j = cat.join(s, on="merchant_id")
    d_km = kernels.great_circle_many(*(j[c].to_numpy() for c in ("lat_deg", "lon_deg", "s_lat", "s_lon")))
    j = j.with_columns(pl.Series("d", d_km))
    ov = j.group_by("merchant_id").agg(
        (pl.col("edge_weight") * (pl.col("country_iso").cast(pl.String) == pl.col("settlement_country_iso"))).sum().alias("o"),
        ((pl.col("edge_weight") * pl.col("d")).sum() / pl.col("edge_weight").sum()).alias("dist"))
    corridor("V05_SETTLEMENT_OVERLAP_MEDIAN", float(ov["o"].median()) if ov.height else 0.0,
             lambda m: m >= r["settlement_overlap_median_min"], r["settlement_overlap_median_min"])
    corridor("V06_SETTLEMENT_OVERLAP_P75", float(ov["o"].quantile(0.75, "linear")) if ov.height else 0.0,
             lambda m: m >= r["settlement_overlap_p75_min"], r["settlement_overlap_p75_min"])
    corridor("V07_SETTLEMENT_DISTANCE_MEDIAN_KM", float(ov["dist"].median()) if ov.height else 0.0,
             lambda m: m <= r["settlement_distance_median_max_km"], r["settlement_distance_median_max_km"])
    corridor("V08_RULE_ID_NON_NULL", 1 - virt["rule_id"].null_count() / max(virt.height, 1),
             lambda m: m >= r["rule_id_non_null_min"], r["rule_id_non_null_min"])
    corridor("V09_RULE_VERSION_NON_NULL", 1 - virt["rule_version"].null_count() / max(virt.height, 1),
             lambda m: m >= r["rule_version_non_null_min"], r["rule_version_non_null_min"])
    corridor("V10_ACTIVE_RULE_IDS", virt["rule_id"].drop_nulls().n_unique(), lambda m: m >= r["active_rule_ids_min"],
             r["active_rule_ids_min"])
    out.append(_row("V11_ALIAS_FIDELITY", alias_max_abs_delta <= r["alias_max_abs_delta_max"], alias_max_abs_delta,
                    r["alias_max_abs_delta_max"]))
    cnp = classification.join(merchants.select("merchant_id", pl.col("channel").cast(pl.String)), on="merchant_id") \
        .filter(pl.col("channel") == "card_not_present")
    share = float(cnp["is_virtual"].mean()) if cnp.height else 0.0
    corridor("CLASSIFICATION_VIRTUAL_SHARE_CNP", share,
             lambda m: r["virtual_share_cnp_min"] <= m <= r["virtual_share_cnp_max"],
             [r["virtual_share_cnp_min"], r["virtual_share_cnp_max"]])
    n = per["n"]
    out.append(_row("EDGE_COUNT_CORRIDOR", n.len() == 0 or (n.min() >= r["edge_count_min"] and n.max() <= r["edge_count_max"]),
                    None, [r["edge_count_min"], r["edge_count_max"]]))
    return out


def structural(classification: pl.DataFrame, merchants: pl.DataFrame, settle: pl.DataFrame, cat: pl.DataFrame,
               edge_index: pl.DataFrame, valid_tzids) -> list[dict]:
    """Coverage, tzid validity, weight sums, index ↔ catalogue."""
    virt = classification.filter("is_virtual").select("merchant_id")
    out = [_row("CLASSIFICATION_COVERS_UNIVERSE", classification["merchant_id"].sort().equals(
        merchants["merchant_id"].sort()) and not classification["merchant_id"].is_duplicated().any(), None, "1 row per merchant")]
    out.append(_row("SETTLEMENT_EXACTLY_VIRTUAL", settle["merchant_id"].sort().equals(virt["merchant_id"].sort()), None, "="))
    per = cat.group_by("merchant_id").agg(pl.len().alias("n"), (pl.col("edge_weight").sum() - 1).abs().alias("dev"),
                                          (pl.col("edge_weight") <= 0).any().alias("nonpos"))
    out.append(_row("EVERY_VIRTUAL_HAS_EDGES", virt.join(per, on="merchant_id", how="anti").height == 0, None, ">= 1"))
    dev = float(per["dev"].max()) if per.height else 0.0
    out.append(_row("EDGE_WEIGHTS_SUM_TO_1", dev <= 1e-12 and not per["nonpos"].any(), dev, 1e-12))
    tz = set(valid_tzids)
    bad = (~cat["tzid_operational"].is_in(list(tz))).sum() + (~settle["tzid_settlement"].is_in(list(tz))).sum()
    out.append(_row("TZIDS_VALID", bad == 0, bad, 0))
    idx = edge_index.select("merchant_id", "edge_count_total").join(per.select("merchant_id", "n"), on="merchant_id",
                                                                        how="full", coalesce=True)
    out.append(_row("INDEX_MATCHES_CATALOGUE", idx.filter(pl.col("n").is_null() | (pl.col("n") != pl.col("edge_count_total")))
                    .height == 0, None, "="))
    return out


def overall(rows: list[dict]) -> str:
    return "FAIL" if any(r["status"] == "FAIL" for r in rows) else "PASS"
