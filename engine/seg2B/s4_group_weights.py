"""2B.S4: group weights p_group per (merchant, UTC day, tz group) over the horizon (RNG-free)."""
from __future__ import annotations

from engine.core import datasets
from engine.core.context import RunContext

from . import logic
from .common import load_policies, report_path, state_report

CODE = "2B.S4"


def run(ctx: RunContext) -> None:
    rep = state_report("S4")
    pol = load_policies(ctx, "S4")
    sw = datasets.read(ctx, "s1_site_weights", CODE)
    de = datasets.read(ctx, "s3_day_effects", CODE)
    out, counts = logic.group_weights(sw, de, pol["group_mix"])
    datasets.publish(ctx, out, "s4_group_weights", CODE)
    rep.count(**counts)
    rep.rng(None)
    rep.write(report_path(ctx, "S4"))
