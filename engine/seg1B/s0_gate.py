"""1B.S0: verify 1A's gate, then seal the inputs 1B reads (RNG-free)."""
from __future__ import annotations

from engine.core.context import RunContext
from engine.core.gate import run_gate

from .common import report_path, state_report

CODE = "1B.S0"


def run(ctx: RunContext) -> None:
    rep = state_report("S0")
    upstream = run_gate(ctx, CODE)
    rep.count(upstream_verified=len(upstream))
    rep.rng(None)
    rep.write(report_path(ctx, "S0"))
