"""Shared 2B helpers: segment bookkeeping, policies from the declared paths, the stream deriver."""
from __future__ import annotations

from engine.core.context import RunContext
from engine.core.segment import Segment

from . import logic, policies

SEG = "2B"

_SEGMENT = Segment(SEG)
state_report = _SEGMENT.report
report_path = _SEGMENT.report_path
write_trace = _SEGMENT.write_trace


def load_policies(ctx: RunContext, state: str) -> dict[str, dict]:
    return policies.load_policies(ctx.io.policy(SEG, "site_weights").parent, state)


def derive(ctx: RunContext) -> logic.Derive:
    return logic.stream_deriver(ctx.receipt["manifest_fingerprint"], ctx.receipt["parameter_hash"], ctx.seed)
