"""3A.S6: validation (chapter A4; S6 checks and the S7 bundle in one state) — S1 domain, Z(c) universe,
S3 domain, sums and a full replay with RNG accounting, S4 conservation and a replay, zone_alloc = S4,
the universe hash recomputed, the realism corridors; bundle (with zone_alloc_universe_hash.json, which
3B.S0 reads through this flag) and flag."""
from __future__ import annotations

import json

import polars as pl

from engine.core import html, validation
from engine.core.context import RunContext
from engine.core.validation import Checks, frames_equal, load_datasets, rng_accounting

from . import checks, counts, egress, shares
from .common import PAIR, SEG, load_policies, pack, state_report
from .s5_zone_alloc import digests

CODE = "3A.S6"


def structural(ctx: RunContext, d: dict, pol: dict, chk: Checks) -> pl.DataFrame:
    z = pack(pol, "S6")
    checks.add_to(chk, checks.structural(d["s1_escalation_queue"], d["outlet_catalogue"], z, d["s3_zone_shares"],
                                         d["s4_zone_counts"], d["zone_alloc"]))
    s2 = d["s2_country_zone_priors"]
    same = s2.select("country_iso", "tzid").equals(z.select("country_iso", "tzid"))
    chk.add("chk_s2_zone_universe", same and bool((s2["alpha_effective"] > 0).all()), figure=s2.height, threshold=z.height)
    single = d["s1_escalation_queue"].filter((pl.col("zone_count_country") <= 1) & pl.col("is_escalated")).height
    chk.add("single_zone_pairs_never_escalate", single == 0, figure=single, threshold=0)
    return z


def replays(ctx: RunContext, d: dict, pol: dict, chk: Checks) -> dict:
    """S3 and S4 recomputed from their inputs: bit-identical rows, events and RNG budget."""
    q, s2, s3 = d["s1_escalation_queue"], d["s2_country_zone_priors"], d["s3_zone_shares"]
    mix = pol["zone_mixture_policy"]
    again, events, trace = shares.draw_shares(q, s2, mix, ctx.identity, CODE)
    chk.add("replay_s3_zone_shares", frames_equal(again.select(s3.columns), s3))
    ev = d["rng_event_zone_dirichlet"]
    chk.add("replay_s3_rng_events", frames_equal(events.select(ev.columns), ev))
    esc = int(q["is_escalated"].sum())
    chk.add("chk_s3_rng_accounting", shares.trace_reconciles(trace.to_dict(), ev) and ev.height == esc,
            figure=ev.height, threshold=esc)
    checks.add_to(chk, [checks.replay_matches(q, s2, mix, ctx.identity, s3, pol["validation"])])
    k = counts.zone_counts(s3, CODE)
    chk.add("replay_s4_zone_counts", frames_equal(k.select(d["s4_zone_counts"].columns), d["s4_zone_counts"]))
    want = {f: {x: v[x] for x in ("events", "draws", "blocks")} for f, v in trace.to_dict().items()}
    return rng_accounting(ctx, SEG, ("S3",), want, chk)


def universe(ctx: RunContext, chk: Checks) -> dict:
    got = json.loads(ctx.io.input("universe_hash").read_text())
    want = egress.universe_hash(digests(ctx, ctx.io.input("zone_alloc")))
    chk.add("chk_s5_universe_hash", got == want, detail=want["routing_universe_hash"])
    return got


def metrics(d: dict) -> dict:
    q, k = d["s1_escalation_queue"], d["s4_zone_counts"]
    el = q.filter("eligible_for_escalation")
    per = k.filter(pl.col("zone_site_count") > 0).group_by(PAIR).len()
    return {"pairs": q.height, "escalated_pairs": int(q["is_escalated"].sum()),
            "escalation_rate_eligible": float(el["is_escalated"].mean()) if el.height else None,
            "zone_alloc_rows": d["zone_alloc"].height,
            "median_nonzero_zones_per_escalated_pair": float(per["len"].median()) if per.height else None}


def run(ctx: RunContext) -> None:
    rep = state_report("S6")
    pol = load_policies(ctx, "S6")
    chk = Checks(CODE)
    d = load_datasets(ctx, SEG, chk, extra=("outlet_catalogue",))
    acct, uni, figs, realism = {}, {}, {}, []
    if not chk.failed:
        structural(ctx, d, pol, chk)
        acct = replays(ctx, d, pol, chk)
        uni = universe(ctx, chk)
        realism = checks.realism(d["s2_country_zone_priors"], d["s1_escalation_queue"], d["s3_zone_shares"],
                                 d["s4_zone_counts"], pol["validation"])
        checks.add_to(chk, realism)
        figs = metrics(d)
    sections = [("Metrics", html.table([figs]))] if figs else []
    q = d.get("s1_escalation_queue")
    if q is not None and q.height:
        r = q.group_by("decision_reason").len().sort("decision_reason")
        sections.append(("Pairs by escalation decision", html.bars(list(zip(r["decision_reason"], r["len"])))))
    za = d.get("zone_alloc")
    if za is not None and za.height:
        top = za.group_by("tzid").agg(pl.col("zone_site_count").sum()).sort(["zone_site_count", "tzid"],
                                                                            descending=[True, False]).head(15)
        sections.append(("Outlets of escalated pairs by zone (top 15)", html.bars(list(zip(top["tzid"],
                                                                                           top["zone_site_count"])))))
    page = validation.page(ctx, chk, "Segment 3A: outlets split across time zones", sections)
    validation.finish(ctx, chk, rep, page, {"zone_alloc_universe_hash.json": uni, "rng_accounting.json": {"families": acct},
                                            "metrics.json": figs, "realism_report.json": realism})
