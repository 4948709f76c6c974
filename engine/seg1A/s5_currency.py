"""1A.S5: currency -> country weights (smoothed, hub floors, exact-sum at dp) and merchant κ."""
from __future__ import annotations

import polars as pl

from engine.core import datasets
from engine.core.context import RunContext
from engine.core.errors import EngineFailure
from engine.core.integerise import largest_remainder

from .common import policy, report_path, state_report

CODE = "1A.S5"
FILE = "config/1A/currency.yaml"


def merchant_currency(mids: pl.DataFrame, cref: pl.DataFrame, overrides: dict) -> pl.DataFrame:
    ov = pl.DataFrame({"home_country_iso": list(overrides), "ov": list(overrides.values())},
                      schema={"home_country_iso": pl.String, "ov": pl.String})
    return (mids.select("merchant_id", "home_country_iso")
            .join(cref.select(pl.col("country_iso").alias("home_country_iso"), "currency"),
                  on="home_country_iso", how="left", maintain_order="left")
            .join(ov, on="home_country_iso", how="left", maintain_order="left")
            .select("merchant_id", pl.coalesce("ov", "currency").alias("kappa"),
                    pl.when(pl.col("ov").is_not_null()).then(pl.lit("override"))
                    .otherwise(pl.lit("home_primary_legal_tender")).alias("source")))


def _params(cfg: dict) -> pl.DataFrame:
    d = cfg["smoothing"]["defaults"]
    rows = []
    for ccy, over in cfg["smoothing"]["per_currency"].items():
        rows.append({"currency": ccy, **{**d, **over}})
    return pl.DataFrame(rows, schema={"currency": pl.String, "blend_weight": pl.Float64, "alpha": pl.Float64,
                                      "obs_floor": pl.Int64, "min_share": pl.Float64, "shrink_exponent": pl.Float64})


def quantise(df: pl.DataFrame, dp: int) -> pl.DataFrame:
    """Exact-sum ULPs per currency: p -> integer ULPs summing to 10^dp (core largest remainder)."""
    scale = 10 ** dp
    out = largest_remainder(df.with_columns(pl.lit(scale, pl.Int64).alias("_scale")), ["currency"], "_scale", "p",
                            [("country_iso", False)], dp=12)
    return (out.with_columns(pl.col("count").alias("ulps"), (pl.col("count") / scale).alias("weight"))
            .drop("_scale", "count", "residual", "residual_rank").sort("currency", "country_iso"))


def currency_weights(cref: pl.DataFrame, cfg: dict) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(ccy_country_weights, sparse_flag) from the currency-area surface plus hub floors."""
    isos = set(cref["country_iso"])
    floor_rows = [(c, iso, s) for c, m in cfg["min_share_iso"].items() for iso, s in m.items()]
    for c, iso, _ in floor_rows:
        if iso not in isos:
            raise EngineFailure(f"{CODE}.FK_ISO", f"min_share_iso names {iso}, which is not in country_ref",
                                {"file": FILE, "field": f"min_share_iso.{c}.{iso}"})
    floors = pl.DataFrame(floor_rows, schema={"currency": pl.String, "country_iso": pl.String,
                                              "floor": pl.Float64}, orient="row")
    totals = pl.DataFrame({"currency": list(cfg["total_obs"]), "total_obs": list(cfg["total_obs"].values())},
                          schema={"currency": pl.String, "total_obs": pl.Int64})
    area = (cref.select("currency", "country_iso", "population")
            .with_columns((pl.col("population") / pl.col("population").sum().over("currency")).alias("s_ccy"))
            .join(totals, on="currency", how="left")
            .with_columns(pl.col("total_obs").fill_null(cfg["total_obs_default"]))
            .with_columns(pl.max_horizontal(pl.lit(cfg["min_obs_per_pair"]),
                                            (pl.col("total_obs") * pl.col("s_ccy")).round(0).cast(pl.Int64))
                          .alias("n_ccy")))
    known = set(area["currency"])
    floors = floors.filter(pl.col("currency").is_in(list(known)))
    d = cfg["smoothing"]["defaults"]
    # ccy_only degrade (no settlement surface): blend weight 1, hubs enter with q = 0.
    w = (area.select("currency", "country_iso", "s_ccy", "n_ccy")
         .join(floors, on=["currency", "country_iso"], how="full", coalesce=True)
         .with_columns(pl.col("s_ccy").fill_null(0.0), pl.col("n_ccy").fill_null(0))
         .join(_params(cfg), on="currency", how="left")
         .with_columns([pl.col(k).fill_null(d[k]) for k in ("alpha", "obs_floor", "min_share", "shrink_exponent")])
         .with_columns(pl.max_horizontal("floor", "min_share").fill_null(pl.col("min_share")).alias("floor"),
                       pl.col("n_ccy").sum().over("currency").alias("n0"),
                       pl.len().over("currency").alias("set_size")))
    w = w.with_columns(pl.max_horizontal(pl.col("obs_floor").cast(pl.Float64),
                                         pl.col("n0").cast(pl.Float64) ** (1.0 / pl.max_horizontal(
                                             pl.col("shrink_exponent"), pl.lit(1.0)))).alias("n_eff"))
    w = w.with_columns(((pl.col("s_ccy") * pl.col("n_eff") + pl.col("alpha"))
                        / (pl.col("n_eff") + pl.col("alpha") * pl.col("set_size"))).alias("post"))
    bad = w.group_by("currency").agg(pl.col("floor").sum()).filter(pl.col("floor") > 1.0)
    if bad.height:
        raise EngineFailure(f"{CODE}.MINSHARE_INFEASIBLE", "hub floors sum above 1",
                            {"file": FILE, "currency": bad["currency"][0]})
    w = w.with_columns(pl.max_horizontal("post", "floor").alias("p1"))
    w = w.with_columns((pl.col("p1") / pl.col("p1").sum().over("currency")).alias("p"))
    w = quantise(w.select("currency", "country_iso", "p", "n_ccy"), cfg["dp"])
    weights = w.select("currency", "country_iso", "weight", pl.col("n_ccy").alias("obs_count"))
    sparse = (area.group_by("currency").agg(pl.col("n_ccy").sum().alias("obs_count"))
              .join(_params(cfg).select("currency", "obs_floor"), on="currency", how="left")
              .with_columns(pl.col("obs_floor").fill_null(d["obs_floor"]).alias("threshold"))
              .select("currency", (pl.col("obs_count") < pl.col("threshold")).alias("is_sparse"),
                      "obs_count", "threshold").sort("currency"))
    return weights, sparse


def run(ctx: RunContext) -> None:
    rep = state_report("S5")
    cfg = policy(ctx, "currency", "S5")
    cref = datasets.read(ctx, "country_ref", CODE)
    mids = datasets.read(ctx, "merchant_ids", CODE)
    weights, sparse = currency_weights(cref, cfg)
    sums = weights.group_by("currency").agg(pl.col("weight").sum())
    if (sums["weight"] - 1.0).abs().max() > 1e-6:
        raise EngineFailure(f"{CODE}.WEIGHT_SUM", "currency weights do not sum to 1", {"file": FILE})
    mc = merchant_currency(mids, cref, cfg["kappa_overrides"])
    missing = mc.filter(~pl.col("kappa").is_in(weights["currency"].unique().to_list()) | pl.col("kappa").is_null())
    if missing.height:
        raise EngineFailure(f"{CODE}.CURRENCY_UNRESOLVED", "merchant currency has no weights",
                            {"merchant_id": missing["merchant_id"][0], "file": FILE})
    datasets.publish(ctx, weights, "ccy_country_weights", CODE)
    datasets.publish(ctx, mc, "merchant_currency", CODE)
    datasets.publish(ctx, sparse, "sparse_flag", CODE)
    rep.count(currencies=sparse.height, weight_rows=weights.height, merchants=mc.height,
              sparse_currencies=int(sparse["is_sparse"].sum()))
    rep.rng(None)
    rep.write(report_path(ctx, "S5"))
