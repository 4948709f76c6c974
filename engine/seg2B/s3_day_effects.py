"""2B.S3: day effects γ per (merchant, UTC day, tz group), E[γ] = 1; one hash per merchant."""
from __future__ import annotations

from engine.core import datasets
from engine.core.context import RunContext

from . import logic, policies
from .common import derive, load_policies, report_path, state_report, write_trace

CODE = "2B.S3"


def run(ctx: RunContext) -> None:
    rep = state_report("S3")
    pol = load_policies(ctx, "S3")
    sw = datasets.read(ctx, "s1_site_weights", CODE)
    days = policies.horizon_days(ctx.config)
    out, counts, trace = logic.day_effects(sw, pol["day_effects"], days, ctx.receipt["manifest_fingerprint"],
                                           derive(ctx))
    datasets.publish(ctx, out, "s3_day_effects", CODE)
    rep.count(**counts)
    rep.rng(write_trace(ctx, "S3", trace))
    rep.write(report_path(ctx, "S3"))
