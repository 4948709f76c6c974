"""1A.S6: foreign country selection by Gumbel-top-K over the currency weights."""
from __future__ import annotations

import numpy as np
import polars as pl

from engine.core import csr, datasets, detmath, rng
from engine.core.context import RunContext
from engine.core.errors import EngineFailure

from . import kernels
from .common import SEG, policy, report_path, state_report, streams, write_trace

CODE = "1A.S6"


def considered(ctx: RunContext, code: str, cap: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(targets, considered rows): foreign candidates of merchants with K_target > 0, with weights."""
    cands = datasets.read(ctx, "s3_candidate_set", code)
    ztp = datasets.read(ctx, "s4_ztp_target", code)
    w = datasets.read(ctx, "ccy_country_weights", code)
    mc = datasets.read(ctx, "merchant_currency", code)
    targets = ztp.filter(pl.col("k_target") > 0).select("merchant_id", "k_target")
    rows = (cands.filter(~pl.col("is_home")).join(targets, on="merchant_id", how="semi")
            .select("merchant_id", "country_iso", "candidate_rank"))
    if cap > 0:
        rows = rows.filter(pl.col("candidate_rank") <= cap)
    rows = (rows.join(mc.select("merchant_id", "kappa"), on="merchant_id", how="left")
            .join(w.select(pl.col("currency").alias("kappa"), "country_iso", "weight"),
                  on=["kappa", "country_iso"], how="left")
            .with_columns(pl.col("weight").fill_null(0.0))
            .sort("merchant_id", "candidate_rank")
            .select("merchant_id", "country_iso", "candidate_rank", "weight"))
    return targets, rows


def gumbel_select(rows: pl.DataFrame, u: np.ndarray, targets: pl.DataFrame) -> pl.DataFrame:
    """key = ln w - ln(-ln u) (null for w = 0); top K_realized by key, ties to lower rank."""
    w = rows["weight"].to_numpy()
    with np.errstate(divide="ignore"):
        key = np.where(w > 0, detmath.log(w) - detmath.log(-detmath.log(u)), np.nan)
    df = rows.with_columns(pl.Series("u", u), pl.Series("gumbel_key", key).fill_nan(None))
    ranked = (df.join(targets, on="merchant_id", how="left", maintain_order="left")
              .with_columns(pl.col("gumbel_key").rank("ordinal", descending=True).over("merchant_id").alias("pos"))
              .sort("merchant_id", "candidate_rank"))
    # rank() of equal keys follows row order, which is candidate_rank: the tie-break
    return ranked.with_columns((pl.col("gumbel_key").is_not_null() & (pl.col("pos") <= pl.col("k_target")))
                               .alias("selected")) \
        .select("merchant_id", "country_iso", "candidate_rank", "weight", "u", "gumbel_key", "selected")


def run(ctx: RunContext) -> None:
    rep = state_report("S6")
    sel = policy(ctx, "selection", "S6")
    targets, rows = considered(ctx, CODE, sel["max_candidates_cap"])
    ids = targets["merchant_id"].to_numpy()
    offsets = csr.offsets(ids, rows["merchant_id"].to_numpy())
    st = streams(ctx, "gumbel_key", ids)
    u, end = kernels.csr_uniforms(st, offsets)
    out = gumbel_select(rows, u, targets)
    if out.filter(pl.col("selected") & (pl.col("weight") <= 0)).height:
        raise EngineFailure(f"{CODE}.ZERO_WEIGHT_SELECTED", "a zero-weight country was selected", {})
    trace = rng.RngTrace()
    trace.add_states(f"{SEG}.gumbel_key", st, end)
    datasets.publish(ctx, out, "s6_membership", CODE)
    n_sel = out.group_by("merchant_id").agg(pl.col("selected").sum())
    rep.count(merchants=len(ids), considered=out.height, selected=int(out["selected"].sum()),
              zero_weight_domain=int(n_sel.filter(pl.col("selected") == 0).height),
              no_candidates=len(ids) - n_sel.height)
    rep.rng(write_trace(ctx, "S6", trace))
    rep.write(report_path(ctx, "S6"))
