"""Per-segment bookkeeping every state uses: policies, reports, rng traces, streams."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import rng
from .context import RunContext, StateReport
from .contracts import load_policy
from .identity import dumps
from .publish import publish_text


class Segment:
    def __init__(self, seg: str):
        self.seg = seg

    def policy(self, ctx: RunContext, name: str, state: str = "S0") -> dict:
        """config/<SEG>/<name>.yaml, validated against its schema; errors carry `<SEG>.<state>`."""
        return load_policy(ctx.io.policy(self.seg, name), self.seg, name, f"{self.seg}.{state}")

    def report(self, state: str) -> StateReport:
        return StateReport(self.seg, state)

    def report_path(self, ctx: RunContext, state: str) -> Path:
        return ctx.io.output("report")

    def write_trace(self, ctx: RunContext, state: str, trace: rng.RngTrace) -> dict:
        d = trace.to_dict()
        publish_text(dumps(d), ctx.io.output("trace"), f"{self.seg}.{state}", overwrite=True)
        return d

    def streams(self, ctx: RunContext, family: str, domain_keys: Sequence[str], scenario_id: str = "") -> np.ndarray:
        """One stream per domain key for family `<SEG>.<family>` (one SHA-256 each)."""
        return rng.derive_streams(f"{self.seg}.{family}", ctx.receipt["manifest_fingerprint"],
                                  ctx.receipt["parameter_hash"], ctx.seed, scenario_id, domain_keys)
