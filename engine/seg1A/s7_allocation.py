"""1A.S7: integer split of N over home + selected countries (Dirichlet, home floor, largest remainder)."""
from __future__ import annotations

import numpy as np
import polars as pl

from engine.core import csr, datasets, rng
from engine.core.context import RunContext
from engine.core.errors import EngineFailure
from engine.core.integerise import largest_remainder

from . import kernels
from .common import SEG, policy, report_path, state_report, streams, write_trace

CODE = "1A.S7"


def domain(ctx: RunContext, code: str) -> pl.DataFrame:
    """D per multi-site merchant: home + selected, in candidate_rank order, with N and κ weights."""
    nb = datasets.read(ctx, "s2_nb_outlets", code).select("merchant_id", "n_outlets")
    cands = datasets.read(ctx, "s3_candidate_set", code)
    sel = datasets.read(ctx, "s6_membership", code).filter(pl.col("selected")).select("merchant_id", "country_iso")
    mc = datasets.read(ctx, "merchant_currency", code).select("merchant_id", "kappa")
    w = datasets.read(ctx, "ccy_country_weights", code).select(pl.col("currency").alias("kappa"), "country_iso", "weight")
    home = cands.filter(pl.col("is_home")).join(nb, on="merchant_id", how="semi").select("merchant_id", "country_iso")
    d = (pl.concat([home, sel])
         .join(cands.select("merchant_id", "country_iso", "candidate_rank", "is_home"),
               on=["merchant_id", "country_iso"], how="left")
         .join(nb, on="merchant_id", how="left").join(mc, on="merchant_id", how="left")
         .join(w, on=["kappa", "country_iso"], how="left")
         .with_columns(pl.col("weight").fill_null(0.0))
         .sort("merchant_id", "candidate_rank"))
    if d["candidate_rank"].null_count():
        raise EngineFailure(f"{CODE}.DOMAIN_MISMATCH", "selected country missing from the S3 candidate set", {})
    return d


def home_floor(n: np.ndarray, tiers: list[dict]) -> np.ndarray:
    h = np.full(len(n), np.nan)
    for t in reversed(tiers):      # first tier with N <= max_n wins: apply in reverse
        cap = np.inf if t["max_n"] is None else t["max_n"]
        h = np.where(n <= cap, t["min_home_share"], h)
    return h


def shares(ctx: RunContext, d: pl.DataFrame, cfg: dict):
    """Base shares, α, Dirichlet draw and home floor. Returns (frame, streams, end states)."""
    # home weight 0 (home outside κ's set) counts as 1 before renormalising
    w = np.where(d["is_home"].to_numpy() & (d["weight"].to_numpy() <= 0), 1.0, d["weight"].to_numpy())
    d = d.with_columns(pl.Series("w", w))
    d = d.with_columns((pl.col("w") / pl.col("w").sum().over("merchant_id")).alias("base_share"),
                       pl.len().over("merchant_id").alias("size"))
    dc = cfg["dirichlet"]
    boosted = d.with_columns(pl.when(pl.col("is_home")).then(pl.col("base_share") * dc["home_boost"])
                             .otherwise(pl.col("base_share")).alias("s"))
    boosted = boosted.with_columns(pl.col("s") / pl.col("s").sum().over("merchant_id"))
    alpha = np.clip(dc["total_concentration"] * boosted["s"].to_numpy(), dc["alpha_min"], dc["alpha_max"])
    ids = d["merchant_id"].unique(maintain_order=True).to_numpy()
    offs = csr.offsets(ids, d["merchant_id"].to_numpy())
    sizes = np.diff(offs)
    st = streams(ctx, "dirichlet_gamma", ids)
    draw = (sizes > 1) & dc["enabled"]
    g, end = kernels.csr_gamma(st, offs, alpha, draw)
    d = d.with_columns(pl.Series("alpha", alpha), pl.Series("g", g))
    p = pl.when(pl.col("size") == 1).then(1.0)
    p = p.when(pl.lit(dc["enabled"])).then(pl.col("g") / pl.col("g").sum().over("merchant_id")) \
        .otherwise(pl.col("base_share"))
    d = d.with_columns(p.alias("p"))
    d = d.with_columns(pl.Series("h", home_floor(d["n_outlets"].to_numpy(), cfg["home_floor_tiers"])))
    p_home = pl.col("p").filter(pl.col("is_home")).first().over("merchant_id")
    foreign = (pl.col("p").sum().over("merchant_id") - p_home)
    lift = p_home < pl.col("h")
    d = d.with_columns(pl.when(~lift).then(pl.col("p"))
                       .when(pl.col("is_home")).then(pl.col("h"))
                       .otherwise(pl.col("p") * (1.0 - pl.col("h")) / foreign).alias("final_share"))
    return d, st, end


def allocate(d: pl.DataFrame, dp: int) -> pl.DataFrame:
    out = largest_remainder(d, ["merchant_id"], "n_outlets", "final_share",
                            [("country_iso", False), ("candidate_rank", False)], dp)
    return out.select("merchant_id", "country_iso", "candidate_rank", "base_share", "alpha", "final_share",
                      "residual", "residual_rank", pl.col("count").cast(pl.Int32), "n_outlets", "h", "is_home")


def run(ctx: RunContext) -> None:
    rep = state_report("S7")
    cfg = policy(ctx, "allocation", "S7")
    d = domain(ctx, CODE)
    if np.any(~np.isfinite(d["weight"].to_numpy())):
        raise EngineFailure(f"{CODE}.ZERO_SUPPORT", "non-finite base weight", {})
    shared, st, end = shares(ctx, d, cfg)
    bad = shared.filter(~pl.col("alpha").is_finite() | (pl.col("alpha") <= 0))
    if bad.height:
        raise EngineFailure(f"{CODE}.ALPHA_INVALID", "Dirichlet alpha not positive", {"merchant_id": bad["merchant_id"][0]})
    alloc = allocate(shared, cfg["dp_resid"])
    sums = alloc.group_by("merchant_id").agg(pl.col("count").sum(), pl.col("n_outlets").first())
    if sums.filter(pl.col("count") != pl.col("n_outlets")).height:
        raise EngineFailure(f"{CODE}.SUM_MISMATCH", "counts do not sum to N", {})
    if alloc.filter((pl.col("count") - pl.col("n_outlets") * pl.col("final_share")).abs() >= 1).height:
        raise EngineFailure(f"{CODE}.PROXIMITY", "a count is 1 or more away from N*p", {})
    trace = rng.RngTrace()
    trace.add_states(f"{SEG}.dirichlet_gamma", st, end)
    datasets.publish(ctx, alloc.drop("n_outlets", "h", "is_home"), "s7_allocation", CODE)
    rep.count(merchants=sums.height, rows=alloc.height, outlets=int(alloc["count"].sum()),
              zero_count_rows=int((alloc["count"] == 0).sum()))
    rep.rng(write_trace(ctx, "S7", trace))
    rep.write(report_path(ctx, "S7"))
