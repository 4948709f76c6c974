"""1A.S2: total outlet count N >= 2 of multi-site merchants (NB as Poisson-Gamma, rejection)."""
from __future__ import annotations

import numpy as np
import polars as pl

from engine.core import datasets, rng
from engine.core.context import RunContext
from engine.core.errors import EngineFailure

from . import nb
from .common import SEG, report_path, state_report, streams, write_trace

CODE = "1A.S2"
ATTEMPT_CAP = 10_000
N_MAX = 999_999


def multi_merchants(ctx: RunContext, code: str) -> pl.DataFrame:
    """merchant_features of the multi-site merchants, in merchant_id order."""
    feats = datasets.read(ctx, "merchant_features", code)
    hurdle = datasets.read(ctx, "s1_hurdle", code)
    return feats.join(hurdle.select("merchant_id", "is_multi"), on="merchant_id", maintain_order="left") \
        .filter(pl.col("is_multi"))


def draw_nb(ctx: RunContext, ids: np.ndarray, mu: np.ndarray, phi: np.ndarray):
    sg = streams(ctx, "nb_gamma", ids)
    sp = streams(ctx, "nb_poisson", ids)
    n, rej, end_g, end_p = nb.nb_batch(sg, sp, mu, phi, ATTEMPT_CAP)
    return n, rej, (sg, end_g), (sp, end_p)


def run(ctx: RunContext) -> None:
    rep = state_report("S2")
    multi = multi_merchants(ctx, CODE)
    ids = multi["merchant_id"].to_numpy()
    mu, phi = multi["mu"].to_numpy(), multi["phi"].to_numpy()
    if np.any(~np.isfinite(mu) | (mu <= 0) | ~np.isfinite(phi) | (phi <= 0)):
        raise EngineFailure(f"{CODE}.NUMERIC_INVALID", "mu or phi not finite and positive", {"dataset": "merchant_features"})
    n, rej, g, p = draw_nb(ctx, ids, mu, phi)
    if np.any(n < 0):
        bad = int(ids[np.argmax(n < 0)])
        raise EngineFailure(f"{CODE}.ATTEMPT_CAP", f"no N >= 2 within {ATTEMPT_CAP} attempts", {"merchant_id": bad})
    if np.any(n > N_MAX):
        raise EngineFailure(f"{CODE}.N_OVERFLOW", f"N above {N_MAX}", {"merchant_id": int(ids[np.argmax(n > N_MAX)])})
    trace = rng.RngTrace()
    trace.add_states(f"{SEG}.nb_gamma", *g)
    trace.add_states(f"{SEG}.nb_poisson", *p)
    out = pl.DataFrame({"merchant_id": ids, "mu": mu, "phi": phi, "n_outlets": n.astype(np.int32),
                        "nb_rejections": rej.astype(np.int32)})
    datasets.publish(ctx, out, "s2_nb_outlets", CODE)
    rep.count(multi_merchants=out.height, outlets=int(n.sum()), rejections=int(rej.sum()))
    rep.rng(write_trace(ctx, "S2", trace))
    rep.write(report_path(ctx, "S2"))
