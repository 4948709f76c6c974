"""1A.S4: target number of foreign countries, zero-truncated Poisson by rejection."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import polars as pl

from engine.core import datasets, detmath, rng
from engine.core.context import RunContext
from engine.core.errors import EngineFailure

from . import kernels
from .common import SEG, policy, report_path, state_report, streams, write_trace

CODE = "1A.S4"


def ztp_inputs(ctx: RunContext, code: str) -> pl.DataFrame:
    """Multi-site merchants with N, openness, eligibility and A = admissible foreign count."""
    nb = datasets.read(ctx, "s2_nb_outlets", code)
    feats = datasets.read(ctx, "merchant_features", code)
    cands = datasets.read(ctx, "s3_candidate_set", code)
    a = cands.group_by("merchant_id").agg((~pl.col("is_home")).sum().cast(pl.Int32).alias("admissible_foreign"))
    return (nb.select("merchant_id", "n_outlets")
            .join(feats.select("merchant_id", "openness", "is_eligible"), on="merchant_id", maintain_order="left")
            .join(a, on="merchant_id", how="left", maintain_order="left")
            .with_columns(pl.col("admissible_foreign").fill_null(0)))


def lambda_extra(n: np.ndarray, openness: np.ndarray, ztp: dict) -> np.ndarray:
    x = np.nan_to_num(openness, nan=0.0)
    return detmath.exp(ztp["theta0"] + ztp["theta1_log_n"] * detmath.log(n) + ztp["theta2_openness"] * x)


class ZtpDraws(NamedTuple):
    """Per merchant: sampled?, λ_extra, target k, attempts, exhausted; the streams and end states."""
    sample: np.ndarray
    lam: np.ndarray
    k: np.ndarray
    attempts: np.ndarray
    exhausted: np.ndarray
    streams: np.ndarray
    end: np.ndarray


def draw_targets(ctx: RunContext, inp: pl.DataFrame, ztp: dict) -> ZtpDraws:
    ids = inp["merchant_id"].to_numpy()
    sample = inp["is_eligible"].to_numpy() & (inp["admissible_foreign"].to_numpy() > 0)
    lam = lambda_extra(inp["n_outlets"].to_numpy().astype(np.float64), inp["openness"].to_numpy(), ztp)
    if np.any(sample & (~np.isfinite(lam) | (lam <= 0))):
        raise EngineFailure(f"{CODE}.NUMERIC_INVALID", "lambda_extra not finite and positive",
                            {"merchant_id": int(ids[np.argmax(sample & ~(lam > 0))])})
    st = streams(ctx, "ztp_poisson", ids)
    k, attempts, exhausted, end = kernels.ztp(st, np.where(sample, lam, 0.0), ztp["max_zero_attempts"])
    return ZtpDraws(sample, lam, k, attempts, exhausted, st, end)


def run(ctx: RunContext) -> None:
    rep = state_report("S4")
    ztp = policy(ctx, "crossborder", "S4")["ztp"]
    inp = ztp_inputs(ctx, CODE)
    z = draw_targets(ctx, inp, ztp)
    sample, lam, k, attempts, exhausted, st, end = z.sample, z.lam, z.k, z.attempts, z.exhausted, z.streams, z.end
    if exhausted.any() and ztp["exhaustion_policy"] == "abort":
        raise EngineFailure(f"{CODE}.ZTP_EXHAUSTED", f"{ztp['max_zero_attempts']} zero draws in a row",
                            {"merchant_id": int(inp["merchant_id"][int(np.argmax(exhausted))])})
    reason = np.where(~inp["is_eligible"].to_numpy(), "ineligible",
                      np.where(~sample, "no_admissible", np.where(exhausted, "downgrade_domestic", "sampled")))
    out = pl.DataFrame({
        "merchant_id": inp["merchant_id"], "admissible_foreign": inp["admissible_foreign"],
        "lambda_extra": np.where(sample, lam, np.nan), "k_target": k, "attempts": attempts,
        "exhausted": exhausted, "reason": reason,
    }).with_columns(pl.col("lambda_extra").fill_nan(None))
    trace = rng.RngTrace()
    trace.add_states(f"{SEG}.ztp_poisson", st, end)
    datasets.publish(ctx, out, "s4_ztp_target", CODE)
    rep.count(rows=out.height, sampled=int((reason == "sampled").sum()), exhausted=int(exhausted.sum()),
              k_target_total=int(k.sum()))
    rep.rng(write_trace(ctx, "S4", trace))
    rep.write(report_path(ctx, "S4"))
