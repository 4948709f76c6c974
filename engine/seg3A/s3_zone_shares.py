"""3A.S3: Dirichlet zone shares per escalated pair (family 3A.zone_dirichlet, one stream per pair)."""
from __future__ import annotations

from engine.core import datasets
from engine.core.context import RunContext
from engine.core.errors import EngineFailure

from . import shares
from .common import load_policies, report_path, state_report, write_trace

CODE = "3A.S3"


def run(ctx: RunContext) -> None:
    rep = state_report("S3")
    pol = load_policies(ctx, "S3")
    q = datasets.read(ctx, "s1_escalation_queue", CODE)
    s2 = datasets.read(ctx, "s2_country_zone_priors", CODE)
    out, events, trace = shares.draw_shares(q, s2, pol["zone_mixture_policy"], ctx.identity, CODE)
    tr = trace.to_dict()
    if not shares.trace_reconciles(tr, events) or events.height != int(q["is_escalated"].sum()):
        raise EngineFailure(f"{CODE}.RNG_ACCOUNTING_MISMATCH", "trace totals differ from the per-pair events",
                            {"events": events.height})
    datasets.publish(ctx, out, "s3_zone_shares", CODE)
    datasets.publish(ctx, events, "rng_event_zone_dirichlet", CODE)
    rep.count(pairs=events.height, rows=out.height)
    rep.rng(write_trace(ctx, "S3", trace))
    rep.write(report_path(ctx, "S3"))
