"""Shared 2A helpers: segment bookkeeping, policies from the declared paths, the run date."""
from __future__ import annotations

import datetime as dt

from engine.core.context import RunContext
from engine.core.segment import Segment

from . import policies

SEG = "2A"
KEY = ["merchant_id", "legal_country_iso", "site_order"]

_SEGMENT = Segment(SEG)
state_report = _SEGMENT.report
report_path = _SEGMENT.report_path


def load_policies(ctx: RunContext, state: str) -> dict[str, dict]:
    """All four 2A policies (schema, finite, semantic checks) from the state's declared files."""
    return policies.load_policies(ctx.io.policy(SEG, "tz_policy").parent, state)


def run_date(ctx: RunContext) -> dt.date:
    """Overrides are active on the run's fixed created_utc date (a label, not the clock)."""
    return dt.date.fromisoformat(ctx.config["run"]["created_utc"][:10])


def world_window(ctx: RunContext) -> tuple[dt.date, dt.date]:
    """[horizon start - 1 d, horizon end + 1 d] of this world (INTERFACES §3)."""
    w = ctx.world
    start = dt.date.fromisoformat(w["horizon_start_utc"][:10])
    return start - dt.timedelta(days=1), start + dt.timedelta(days=int(w["horizon_days"]) + 1)
