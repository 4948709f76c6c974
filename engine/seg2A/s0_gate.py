"""2A.S0: verify 1A and 1B, check the tzdata pin and the cache horizon, seal inputs (RNG-free)."""
from __future__ import annotations

from engine.core.context import RunContext
from engine.core.gate import run_gate

from . import policies, tz_polygons, tz_tables
from .common import load_policies, report_path, state_report

CODE = "2A.S0"


def run(ctx: RunContext) -> None:
    rep = state_report("S0")
    pol = load_policies(ctx, "S0")
    version = policies.check_tzdata(pol["tz_policy"], "S0")
    lo, hi = policies.check_horizon(pol["tz_policy"], ctx.config, "S0")
    upstream = run_gate(ctx, CODE, {"tzdata_version": version, "tz_polygons": tz_polygons.polygon_data_digest(),
                                    "tz_tables": tz_tables.tables_digest(),
                                    "cache_window_required": [lo.isoformat(), hi.isoformat()]})
    rep.count(upstream_verified=len(upstream))
    rep.rng(None)
    rep.write(report_path(ctx, "S0"))
