"""2B.S7: audit and validation (chapter 2B.S7 + S8; S6, the CDN edge pick, is retired): replays of
S1 and S3, m_q on the 2^24 grid, exact alias decode, p_group normalisation, routing membership
and long-run site shares of the audit against the weights, RNG accounting; bundle and flag."""
from __future__ import annotations

import numpy as np
import polars as pl

from engine.core import alias, csr, html, validation
from engine.core.context import RunContext
from engine.core.validation import Checks, frames_equal, load_datasets, rng_accounting

from . import logic, policies
from .common import SEG, derive, load_policies, state_report

CODE = "2B.S7"
KEY = ["merchant_id", "legal_country_iso", "site_order"]


def replay(ctx: RunContext, d: dict, pol: dict, chk: Checks) -> dict:
    sw, _, tr1 = logic.site_weights(d["site_timezones"], pol["site_weights"], derive(ctx))
    chk.add("replay_s1_site_weights", frames_equal(sw.select(d["s1_site_weights"].columns), d["s1_site_weights"]))
    de, _, tr3 = logic.day_effects(d["s1_site_weights"], pol["day_effects"], policies.horizon_days(ctx.config),
                                   ctx.receipt["manifest_fingerprint"], derive(ctx))
    chk.add("replay_s3_day_effects", frames_equal(de.select(d["s3_day_effects"].columns), d["s3_day_effects"]))
    n = d["s5_route_audit"].height
    return {**{f: {k: v[k] for k in ("events", "draws", "blocks")} for f, v in {**tr1.to_dict(), **tr3.to_dict()}.items()},
            **{f"{SEG}.{f}": {"events": n, "draws": n, "blocks": n} for f in ("alias_pick_group", "alias_pick_site")}}


def structural(ctx: RunContext, d: dict, pol: dict, chk: Checks) -> None:
    sw, at, gw = d["s1_site_weights"], d["s2_alias_table"], d["s4_group_weights"]
    g = 1 << int(pol["site_weights"]["quantised_bits"])
    sums = sw.group_by("merchant_id").agg(pl.col("m_q").cast(pl.Int64).sum())
    chk.add("m_q_sums_to_grid", bool((sums["m_q"] == g).all()), figure=int(sums["m_q"].max()), threshold=g)
    err = float((sw["m_q"].cast(pl.Float64) / g - sw["p_weight"]).abs().max())
    chk.add("m_q_close_to_p_weight", err <= pol["site_weights"]["quantisation_epsilon"], figure=err,
            threshold=pol["site_weights"]["quantisation_epsilon"])
    same_sites = at.select(KEY).sort(KEY).equals(sw.select(KEY).sort(KEY))
    chk.add("alias_slots_are_the_sites", same_sites, figure=at.height, threshold=sw.height)
    at = at.sort("merchant_id", "tz_group_id", "slot")
    sl = at.select(pl.struct("merchant_id", "tz_group_id").rle_id()).to_series().to_numpy()
    off = csr.offsets(np.arange(int(sl[-1]) + 1 if len(sl) else 0), sl)
    bad = alias.check_fidelity(off, at["m_slice"].to_numpy(), at["prob_q"].to_numpy(), at["alias_slot"].to_numpy(),
                               bits=int(pol["site_weights"]["quantised_bits"]))
    chk.add("alias_decode_exact", len(bad) == 0, figure=len(bad), threshold=0, detail=f"{len(off) - 1} slices")
    per_md = gw.group_by("merchant_id", "utc_day").agg(pl.col("p_group").sum())
    dev = float((per_md["p_group"] - 1.0).abs().max()) if per_md.height else 0.0
    chk.add("p_group_sums_to_one", dev <= 1e-12, figure=dev, threshold=1e-12)
    days = d["s3_day_effects"]["utc_day"].n_unique()
    want = len(policies.horizon_days(ctx.config))
    chk.add("day_grid_covers_horizon", days == want, figure=days, threshold=want)


def gamma_corridor(d: dict, pol: dict, chk: Checks) -> dict:
    de = d["s3_day_effects"]
    c = pol["validation"]["s3_mean_gamma"]
    mean = float(de["gamma"].mean())
    chk.add("mean_gamma", c["min"] <= mean <= c["max"], figure=mean, threshold=[c["min"], c["max"]],
            severity=c["severity"])
    return {"mean_gamma": mean, "sd_log_gamma": float(de["log_gamma"].std() or 0.0)}


def routing(d: dict, pol: dict, chk: Checks) -> dict:
    routes, sw = d["s5_route_audit"], d["s1_site_weights"]
    member = routes.join(sw.select(*KEY, "tz_group_id"), on=KEY, how="left", suffix="_site")
    wrong = int((member["tz_group_id_site"].is_null() | (member["tz_group_id_site"] != member["tz_group_id"])).sum())
    chk.add("routed_site_in_merchant_and_group", wrong == 0, figure=wrong, threshold=0)
    shares = logic.site_shares(routes, d["s4_group_weights"], d["s2_alias_table"],
                               int(pol["site_weights"]["quantised_bits"]))
    tv = shares.group_by("merchant_id").agg(((pl.col("share") - pl.col("expected_share")).abs().sum() / 2).alias("tv"),
                                            pl.col("count").sum().alias("n"))
    c = pol["validation"]["s5_site_tv"]
    big = tv.filter(pl.col("n") >= c["min_arrivals"])
    worst = float(big["tv"].max()) if big.height else 0.0
    chk.add("site_share_tv", worst <= c["value"], figure=worst, threshold=c["value"], severity=c["severity"],
            detail=f"{big.height} merchants with >= {c['min_arrivals']} routed arrivals")
    return {"max_site_tv": worst, "merchants_judged": big.height}


def run(ctx: RunContext) -> None:
    rep = state_report("S7")
    pol = load_policies(ctx, "S7")
    chk = Checks(CODE)
    d = load_datasets(ctx, SEG, chk, extra=("site_timezones",))
    acct, metrics = {}, {}
    if not chk.failed:
        structural(ctx, d, pol, chk)
        acct = rng_accounting(ctx, SEG, ("S1", "S3", "S5"), replay(ctx, d, pol, chk), chk)
        metrics = {**gamma_corridor(d, pol, chk), **routing(d, pol, chk)}
    sections = [("Metrics", html.table([metrics]))] if metrics else []
    sw = d.get("s1_site_weights")
    if sw is not None and sw.height:
        prof = sw.group_by("merchant_id").agg(pl.col("profile").first()).group_by("profile").len().sort("profile")
        sections.append(("Merchants by site-weight profile", html.bars(list(zip(prof["profile"], prof["len"])))))
    page = validation.page(ctx, chk, "Segment 2B: the routing fabric", sections)
    validation.finish(ctx, chk, rep, page, {"rng_accounting.json": {"families": acct}, "metrics.json": metrics})
