"""2B.S2: integer alias tables per (merchant, tz group) — engine.core.alias, Q0.32 decode (RNG-free)."""
from __future__ import annotations

from engine.core import datasets
from engine.core.context import RunContext

from . import logic
from .common import load_policies, report_path, state_report

CODE = "2B.S2"


def run(ctx: RunContext) -> None:
    rep = state_report("S2")
    pol = load_policies(ctx, "S2")
    sw = datasets.read(ctx, "s1_site_weights", CODE)
    table = logic.alias_slices(sw, int(pol["site_weights"]["quantised_bits"]))
    datasets.publish(ctx, table, "s2_alias_table", CODE)
    rep.count(slots=table.height, slices=table.select("merchant_id", "tz_group_id").n_unique())
    rep.rng(None)
    rep.write(report_path(ctx, "S2"))
