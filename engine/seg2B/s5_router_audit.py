"""2B.S5: the router (two uniforms per arrival, counter = ordinal) run on the audit roster."""
from __future__ import annotations

from engine.core import datasets
from engine.core.context import RunContext

from . import logic
from .common import derive, load_policies, report_path, state_report, write_trace

CODE = "2B.S5"


def run(ctx: RunContext) -> None:
    rep = state_report("S5")
    pol = load_policies(ctx, "S5")
    at = datasets.read(ctx, "s2_alias_table", CODE)
    gw = datasets.read(ctx, "s4_group_weights", CODE)
    plan = logic.router_plan(gw, at, derive(ctx))
    roster = pol["routing"]["audit_roster"]
    routes = logic.audit_routes(plan, **roster)
    n = routes.height
    trace = logic.rng.RngTrace()
    for fam in ("alias_pick_group", "alias_pick_site"):
        trace.add(f"2B.{fam}", n, n, n)
    datasets.publish(ctx, routes.sort("merchant_id", "utc_day", "arrival_seq"), "s5_route_audit", CODE)
    rep.count(routed=n, merchants=routes["merchant_id"].n_unique())
    rep.rng(write_trace(ctx, "S5", trace))
    rep.write(report_path(ctx, "S5"))
