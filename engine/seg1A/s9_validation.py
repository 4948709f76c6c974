"""1A.S9: re-derive every fact from what was written, check corridors, publish the bundle + flag.

S9 reads only published datasets, rng traces and policies. Replays re-run the same engine
functions (and streams) the states used and compare bytes/values; any mismatch fails.
"""
from __future__ import annotations

import math

import numpy as np
import polars as pl

from engine.core import csr, html, rng, validation
from engine.core.context import RunContext
from engine.core.validation import Checks, frames_equal, load_datasets, rng_accounting

from . import (
    kernels,
    realism,
    s0_universe,
    s1_hurdle,
    s2_nb_outlets,
    s3_candidates,
    s4_ztp,
    s5_currency,
    s6_selection,
    s7_allocation,
)
from .common import POLICIES, SEG, policy, state_report, streams

CODE = "1A.S9"


def _round(x):
    return None if x is None else (round(float(x), 10) if isinstance(x, float) else x)


def check_fk(d: dict, chk: Checks) -> None:
    iso = set(d["country_ref"]["country_iso"])
    mids = d["merchant_ids"]
    multi = d["s1_hurdle"].filter(pl.col("is_multi"))["merchant_id"]
    refs = {"merchant_ids.home": mids["home_country_iso"], "s3.country": d["s3_candidate_set"]["country_iso"],
            "catalogue.legal": d["outlet_catalogue"]["legal_country_iso"]}
    bad = {k: v for k, v in refs.items() if not set(v.unique()) <= iso}
    chk.add("fk_country", not bad, figure=len(bad), threshold=0, detail=",".join(bad))
    one_s1 = d["s1_hurdle"]["merchant_id"].sort().equals(mids["merchant_id"].sort())
    chk.add("fk_s1_one_per_merchant", one_s1)
    m = set(multi.to_list())
    for ds in ("s2_nb_outlets", "s4_ztp_target"):
        chk.add(f"fk_{ds}_iff_multi", set(d[ds]["merchant_id"].to_list()) == m)
    for ds in ("s6_membership", "s7_allocation"):
        chk.add(f"fk_{ds}_multi_only", set(d[ds]["merchant_id"].to_list()) <= m)


def check_conservation(d: dict, chk: Checks) -> None:
    nb, alloc, cat = d["s2_nb_outlets"], d["s7_allocation"], d["outlet_catalogue"]
    s = alloc.group_by("merchant_id").agg(pl.col("count").sum()).join(nb, on="merchant_id", how="full")
    bad = s.filter(pl.col("count").fill_null(-1) != pl.col("n_outlets").fill_null(-2)).height
    chk.add("sum_alloc_equals_n", bad == 0, figure=bad, threshold=0)
    rows = cat.group_by("merchant_id", "legal_country_iso").len()
    want = alloc.filter(pl.col("count") > 0).select("merchant_id", pl.col("country_iso").alias("legal_country_iso"), "count")
    multi_ids = nb["merchant_id"]
    j = rows.filter(pl.col("merchant_id").is_in(multi_ids.implode())).join(
        want, on=["merchant_id", "legal_country_iso"], how="full", coalesce=True)
    bad = j.filter(pl.col("len").fill_null(-1) != pl.col("count").fill_null(-2)).height
    chk.add("catalogue_rows_equal_counts", bad == 0, figure=bad, threshold=0)
    singles = d["s1_hurdle"].filter(~pl.col("is_multi")).height
    total = int(nb["n_outlets"].sum() or 0) + singles
    chk.add("catalogue_total_rows", cat.height == total, figure=cat.height, threshold=total)
    seq = cat.group_by("merchant_id", "legal_country_iso").agg(
        (pl.col("site_order").max() == pl.len()).alias("ok"),
        (pl.col("final_country_outlet_count").first() == pl.len()).alias("ok2"))
    chk.add("site_order_contiguous", bool(seq["ok"].all() and seq["ok2"].all()))
    raw = cat.group_by("merchant_id").agg(pl.col("raw_nb_outlet_draw").first(), pl.len())
    chk.add("raw_draw_equals_rows", raw.filter(pl.col("raw_nb_outlet_draw") != pl.col("len")).height == 0)
    pairs = cat.select("merchant_id", pl.col("legal_country_iso").alias("country_iso")).unique()
    miss = pairs.join(d["s3_candidate_set"], on=["merchant_id", "country_iso"], how="anti").height
    chk.add("catalogue_in_candidate_set", miss == 0, figure=miss, threshold=0)
    chk.add("site_id_unique", cat["site_id"].n_unique() == cat.height)
    # K_realized = min(K_target, |eligible|)
    mem = d["s6_membership"]
    k = (d["s4_ztp_target"].filter(pl.col("k_target") > 0).select("merchant_id", "k_target")
         .join(mem.group_by("merchant_id").agg(pl.col("selected").sum().alias("sel"),
                                               (pl.col("weight") > 0).sum().alias("elig")),
               on="merchant_id", how="left").fill_null(0))
    bad = k.filter(pl.col("sel") != pl.min_horizontal("k_target", "elig")).height
    chk.add("k_realized", bad == 0, figure=bad, threshold=0)
    dom = alloc.group_by("merchant_id").len().join(
        mem.filter(pl.col("selected")).group_by("merchant_id").len().rename({"len": "sel"}),
        on="merchant_id", how="left").fill_null(0)
    chk.add("s7_domain_is_home_plus_selected", dom.filter(pl.col("len") != pl.col("sel") + 1).height == 0)


def replay(ctx: RunContext, d: dict, pol: dict, chk: Checks) -> dict[str, dict]:
    """Re-derive S0/S3/S5 deterministically and replay S1/S2/S4/S6/S7 streams; returns rng totals."""
    totals: dict[str, dict] = {}

    def tally(fam, st, end):
        totals[f"{SEG}.{fam}"] = validation.totals(end)

    mids, feats = d["merchant_ids"], d["merchant_features"]
    cref = d["country_ref"]
    # S0: universe and features
    tr = rng.RngTrace()
    _, mccs = s0_universe.load_reference(ctx, CODE)
    mcc_codes = np.sort(mccs["mcc"].cast(pl.Int64).to_numpy())
    uni = s0_universe.draw_universe(ctx, cref, mcc_codes, pol["merchant_mix"], pol["card_market"], tr)
    chk.add("replay_s0_universe", frames_equal(uni.with_columns(pl.col("mcc").cast(pl.Int32)), mids))
    totals.update({k: {x: v[x] for x in ("events", "draws", "blocks")} for k, v in tr.to_dict().items()})
    f2, _ = s0_universe.build_features(mids, cref, pol["crossborder"], pol["hurdle_nb"])
    chk.add("replay_s0_features", frames_equal(f2, feats))
    # S1
    ids = feats["merchant_id"].to_numpy()
    st = streams(ctx, "hurdle_bernoulli", ids)
    u, is_multi, end = s1_hurdle.hurdle(st, feats["pi"].to_numpy())
    h = d["s1_hurdle"]
    same_u = np.array_equal(np.nan_to_num(u, nan=-1), h["u"].fill_null(-1).to_numpy())
    chk.add("replay_s1_hurdle", same_u and np.array_equal(is_multi, h["is_multi"].to_numpy()))
    tally("hurdle_bernoulli", st, end)
    # S2
    multi = feats.join(h.select("merchant_id", "is_multi"), on="merchant_id").filter(pl.col("is_multi"))
    n, rej, g, p = s2_nb_outlets.draw_nb(ctx, multi["merchant_id"].to_numpy(), multi["mu"].to_numpy(),
                                         multi["phi"].to_numpy())
    nb = d["s2_nb_outlets"]
    chk.add("replay_s2_nb", np.array_equal(n, nb["n_outlets"].to_numpy()) and
            np.array_equal(rej, nb["nb_rejections"].to_numpy()))
    tally("nb_gamma", *g)
    tally("nb_poisson", *p)
    # S3
    rules = s3_candidates.ordered_rules(pol["crossborder"]["ladder"], pol["crossborder"]["country_sets"],
                                        set(cref["country_iso"]))
    m = (mids.join(feats.select("merchant_id", "is_eligible"), on="merchant_id", maintain_order="left")
         .join(nb.select("merchant_id", "n_outlets"), on="merchant_id", how="left", maintain_order="left")
         .with_columns(pl.col("n_outlets").fill_null(1).alias("n")))
    c3 = s3_candidates.candidate_set(m, rules, pol["crossborder"]["country_sets"])
    chk.add("replay_s3_candidates", frames_equal(c3, d["s3_candidate_set"]))
    # S4
    inp = (nb.select("merchant_id", "n_outlets")
           .join(feats.select("merchant_id", "openness", "is_eligible"), on="merchant_id", maintain_order="left")
           .join(d["s4_ztp_target"].select("merchant_id", "admissible_foreign"), on="merchant_id", maintain_order="left"))
    a_true = c3.group_by("merchant_id").agg((~pl.col("is_home")).sum().alias("a"))
    a_ok = inp.join(a_true, on="merchant_id").filter(pl.col("a") != pl.col("admissible_foreign")).height == 0
    z = s4_ztp.draw_targets(ctx, inp, pol["crossborder"]["ztp"])
    k, att, st, end = z.k, z.attempts, z.streams, z.end
    z = d["s4_ztp_target"]
    chk.add("replay_s4_ztp", a_ok and np.array_equal(k, z["k_target"].to_numpy())
            and np.array_equal(att, z["attempts"].to_numpy()))
    tally("ztp_poisson", st, end)
    # S5
    w, sparse = s5_currency.currency_weights(cref, pol["currency"])
    chk.add("replay_s5_weights", frames_equal(w, d["ccy_country_weights"]) and frames_equal(sparse, d["sparse_flag"]))
    # S6
    mem = d["s6_membership"]
    targets = z.filter(pl.col("k_target") > 0).select("merchant_id", "k_target")
    tids = targets["merchant_id"].to_numpy()
    st = streams(ctx, "gumbel_key", tids)
    u6, end = kernels.csr_uniforms(st, csr.offsets(tids, mem["merchant_id"].to_numpy()))
    again = s6_selection.gumbel_select(mem.select("merchant_id", "country_iso", "candidate_rank", "weight"), u6, targets)
    chk.add("replay_s6_selection", frames_equal(again, mem))
    tally("gumbel_key", st, end)
    # S7: replay the Dirichlet draw and the integerisation
    dom = (d["s7_allocation"].select("merchant_id", "country_iso", "candidate_rank")
           .join(c3.select("merchant_id", "country_iso", "is_home"), on=["merchant_id", "country_iso"], how="left")
           .join(nb.select("merchant_id", "n_outlets"), on="merchant_id", how="left")
           .join(d["merchant_currency"].select("merchant_id", "kappa"), on="merchant_id", how="left")
           .join(w.select(pl.col("currency").alias("kappa"), "country_iso", "weight"), on=["kappa", "country_iso"],
                 how="left").with_columns(pl.col("weight").fill_null(0.0)).sort("merchant_id", "candidate_rank"))
    shared, st, end = s7_allocation.shares(ctx, dom, pol["allocation"])
    full = s7_allocation.allocate(shared, pol["allocation"]["dp_resid"])
    again = full.drop("n_outlets", "h", "is_home")
    chk.add("replay_s7_allocation", frames_equal(again.with_columns(pl.col("count").cast(pl.Int32)), d["s7_allocation"]))
    # home floor: the recorded home count is at least ⌊h·N⌋
    home = full.filter(pl.col("is_home")).join(d["s7_allocation"].select("merchant_id", "country_iso", "count"),
                                               on=["merchant_id", "country_iso"], suffix="_rec")
    low = home.filter(pl.col("count_rec") < (pl.col("h") * pl.col("n_outlets")).floor()).height
    chk.add("s7_home_floor", low == 0, figure=low, threshold=0)
    tally("dirichlet_gamma", st, end)
    return totals


def corridors(ctx: RunContext, d: dict, pol: dict, chk: Checks) -> list[dict]:
    v = pol["validation"]
    sig = v["band_sigmas"][ctx.world["preset"]]
    nb, cat, mids = d["s2_nb_outlets"], d["outlet_catalogue"], d["merchant_ids"]
    M, n_multi = mids.height, nb.height
    out = []

    def band(name, value, lo, hi, n):
        mid = 0.5 * (lo + hi)
        w = sig * math.sqrt(max(mid * (1 - mid), 0.0) / max(n, 1)) if n else 0.0
        lo2, hi2 = max(lo - w, 0.0), hi + w
        ok = value is not None and lo2 <= value <= hi2
        out.append({"metric": name, "value": _round(value), "bounds": [round(lo2, 6), round(hi2, 6)], "pass": ok})
        chk.add(f"corridor_{name}", ok, figure=_round(value), threshold=[round(lo2, 6), round(hi2, 6)])

    def upper(name, value, hi, n=0):
        if n:                                   # a rate over n trials: binomial tolerance
            hi = round(hi + sig * math.sqrt(hi * (1 - hi) / n), 6)
        ok = value <= hi
        out.append({"metric": name, "value": _round(value), "bounds": [None, hi], "pass": ok})
        chk.add(f"corridor_{name}", ok, figure=_round(value), threshold=hi)

    rej = nb["nb_rejections"].to_numpy().astype(np.float64)
    attempts = float(rej.sum() + len(rej))
    upper("nb_rejection_rate", float(rej.sum() / attempts) if len(rej) else 0.0, v["nb_rejection_rate_max"],
          int(attempts))
    p99 = float(np.sort(rej)[max(int(math.ceil(0.99 * len(rej))) - 1, 0)]) if len(rej) else 0.0
    upper("nb_rejections_p99", p99, v["nb_rejections_p99_max"])
    alpha = np.minimum(s0_universe.nb_acceptance(nb["mu"].to_numpy(), nb["phi"].to_numpy()), v["cusum"]["alpha_cap"])
    z = (rej - (1 - alpha) / alpha) / np.sqrt((1 - alpha) / alpha ** 2)
    upper("nb_rejection_cusum_max", float(kernels.cusum_max(z, v["cusum"]["k"])) if len(z) else 0.0,
          v["cusum"]["h"] - 1e-12)
    band("multi_share", n_multi / M, *v["multi_share"], M)
    mean_n = float(nb["n_outlets"].mean()) if n_multi else 0.0
    sd = float(nb["n_outlets"].std() or 0.0) if n_multi > 1 else 0.0
    lo, hi = v["mean_n_multi"]
    w = sig * sd / math.sqrt(max(n_multi, 1))
    ok = lo - w <= mean_n <= hi + w
    out.append({"metric": "mean_n_multi", "value": _round(mean_n), "bounds": [round(lo - w, 6), round(hi + w, 6)], "pass": ok})
    chk.add("corridor_mean_n_multi", ok, figure=_round(mean_n), threshold=[round(lo - w, 6), round(hi + w, 6)])
    foreign = float((cat["legal_country_iso"] != cat["home_country_iso"]).sum() / cat.height)
    band("foreign_outlet_share", foreign, *v["foreign_outlet_share"], n_multi)
    band("cnp_ratio", float((mids["channel"] == "card_not_present").sum() / M), *v["cnp_ratio"], M)
    homes = mids["home_country_iso"].n_unique()
    need = v["min_distinct_homes"][ctx.world["preset"]]
    out.append({"metric": "distinct_homes", "value": homes, "bounds": [need, None], "pass": homes >= need})
    chk.add("corridor_distinct_homes", homes >= need, figure=homes, threshold=need)
    upper("max_country_count", int(d["s7_allocation"]["count"].max() or 0), v["max_country_count"])
    mcc_codes = np.sort(s0_universe.load_reference(ctx)[1]["mcc"].cast(pl.Int64).to_numpy())
    f = realism.figures(mids, cat, d["country_ref"], mcc_codes, pol["merchant_mix"], pol["card_market"], v["realism"])
    realism.gate(f, v["realism"], ctx.world["preset"], chk, out)
    return out


def summary_page(ctx: RunContext, d: dict, chk: Checks, cors: list[dict]) -> str:
    sections = [("Corridors", html.table(cors))]
    cat = d.get("outlet_catalogue")
    if cat is not None and cat.height:
        per_country = (cat.group_by("legal_country_iso").len().sort(["len", "legal_country_iso"],
                                                                    descending=[True, False]).head(15))
        sections.append(("Outlets by legal country (top 15)",
                         html.bars(list(zip(per_country["legal_country_iso"], per_country["len"])))))
        per_m = cat.group_by("merchant_id").len().group_by("len").len(name="merchants").sort("len")
        sections.append(("Merchants by outlet count",
                         html.bars([(f"{n} outlets", m) for n, m in zip(per_m["len"], per_m["merchants"])])))
    return validation.page(ctx, chk, "Segment 1A: merchants and outlet stubs", sections)


def run(ctx: RunContext) -> None:
    rep = state_report("S9")
    pol = {name: policy(ctx, name, "S9") for name in POLICIES}
    chk = Checks(CODE)
    d = load_datasets(ctx, SEG, chk)
    acct, cors = {}, []
    if not chk.failed:
        check_fk(d, chk)
        check_conservation(d, chk)
        replayed = replay(ctx, d, pol, chk)
        acct = rng_accounting(ctx, SEG, ("S0", "S1", "S2", "S4", "S6", "S7"), replayed, chk)
        cors = corridors(ctx, d, pol, chk)
    validation.finish(ctx, chk, rep, summary_page(ctx, d, chk, cors),
                      {"rng_accounting.json": {"families": acct}, "corridors.json": {"corridors": cors}})
