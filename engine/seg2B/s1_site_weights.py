"""2B.S1: per-site routing weights and their integer masses m_q (Σ = 2^24 per merchant)."""
from __future__ import annotations

from engine.core import datasets
from engine.core.context import RunContext

from . import logic
from .common import derive, load_policies, report_path, state_report, write_trace

CODE = "2B.S1"


def run(ctx: RunContext) -> None:
    rep = state_report("S1")
    pol = load_policies(ctx, "S1")
    sites = datasets.read(ctx, "site_timezones", CODE)
    out, counts, trace = logic.site_weights(sites, pol["site_weights"], derive(ctx))
    datasets.publish(ctx, out, "s1_site_weights", CODE)
    rep.count(**{k: v for k, v in counts.items() if not isinstance(v, float)})
    rep.data["max_quantisation_error"] = counts["max_quantisation_error"]
    rep.rng(write_trace(ctx, "S1", trace))
    rep.write(report_path(ctx, "S1"))
