"""1A.S1: hurdle — is the merchant single-site or multi-site (one Bernoulli per merchant)."""
from __future__ import annotations

import numpy as np
import polars as pl

from engine.core import datasets, rng
from engine.core.context import RunContext
from engine.core.errors import EngineFailure

from . import kernels
from .common import SEG, report_path, state_report, streams, write_trace

CODE = "1A.S1"


def hurdle(strm: np.ndarray, pi: np.ndarray):
    """u for 0<π<1 (NaN otherwise, no draw); is_multi = u < π, or π's own value at 0/1."""
    draw = (pi > 0.0) & (pi < 1.0)
    u, end = kernels.uniforms_masked(strm, 1, draw)
    u = u[:, 0]
    is_multi = np.where(draw, u < pi, pi >= 1.0)
    return u, is_multi, end


def run(ctx: RunContext) -> None:
    rep = state_report("S1")
    feats = datasets.read(ctx, "merchant_features", CODE)
    if feats.height == 0:
        raise EngineFailure(f"{CODE}.CARDINALITY", "merchant_features is empty", {"dataset": "merchant_features"})
    pi = feats["pi"].to_numpy()
    if np.any(~np.isfinite(pi) | (pi < 0) | (pi > 1)):
        raise EngineFailure(f"{CODE}.PI_DOMAIN", "pi outside [0,1]", {"dataset": "merchant_features"})
    ids = feats["merchant_id"].to_numpy()
    st = streams(ctx, "hurdle_bernoulli", ids)
    u, is_multi, end = hurdle(st, pi)
    trace = rng.RngTrace()
    trace.add_states(f"{SEG}.hurdle_bernoulli", st, end)
    out = pl.DataFrame({"merchant_id": ids, "pi": pi, "u": u, "is_multi": is_multi}).with_columns(
        pl.col("u").fill_nan(None))
    datasets.publish(ctx, out, "s1_hurdle", CODE)
    rep.count(merchants=out.height, multi=int(is_multi.sum()))
    rep.rng(write_trace(ctx, "S1", trace))
    rep.write(report_path(ctx, "S1"))
