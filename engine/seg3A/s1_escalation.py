"""3A.S1: the escalation queue — which (merchant, country) pairs spread over several zones (RNG-free)."""
from __future__ import annotations

import polars as pl

from engine.core import datasets
from engine.core.context import RunContext

from . import escalation, priors
from .common import load_policies, pack, report_path, state_report

CODE = "3A.S1"


def run(ctx: RunContext) -> None:
    rep = state_report("S1")
    pol = load_policies(ctx, "S1")
    outlets = datasets.read(ctx, "outlet_catalogue", CODE).select("merchant_id", "legal_country_iso")
    q = escalation.escalation_queue(outlets, priors.zone_counts(pack(pol, "S1")), pol["zone_mixture_policy"],
                                    ctx.receipt["parameter_hash"], CODE)
    datasets.publish(ctx, q, "s1_escalation_queue", CODE)
    reasons = q["decision_reason"].cast(pl.String).value_counts()
    rep.count(pairs=q.height, escalated=int(q["is_escalated"].sum()), eligible=int(q["eligible_for_escalation"].sum()),
              **{f"reason_{r}": n for r, n in reasons.iter_rows()})
    rep.rng(None)
    rep.write(report_path(ctx, "S1"))
