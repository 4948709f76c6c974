"""1A.S0: seal inputs, build country_ref, the merchant universe and merchant features."""
from __future__ import annotations

import numpy as np
import polars as pl

from engine.core import datasets, detmath, rng
from engine.core.context import RunContext
from engine.core.errors import EngineFailure
from engine.core.gate import run_gate

from . import kernels
from .common import (
    CHANNELS,
    POLICIES,
    SEG,
    mcc_in,
    mcc_offsets,
    policy,
    report_path,
    sigmoid,
    state_report,
    streams,
    write_trace,
)
from .mix import card_market_weights, mix_table

CODE = "1A.S0"


# ---------------------------------------------------------------- reference data

def load_reference(ctx: RunContext, code: str = CODE) -> tuple[pl.DataFrame, pl.DataFrame]:
    return datasets.read(ctx, "countries", code), datasets.read(ctx, "mcc_codes", code)


def build_country_ref(countries: pl.DataFrame) -> pl.DataFrame:
    need = ["country_iso", "alpha3", "name", "population", "currency", "gdp_pc_usd", "gdp_bucket"]
    missing = [c for c in need if c not in countries.columns]
    if missing:
        raise EngineFailure(f"{CODE}.REF_COVERAGE", "countries table lacks columns",
                            {"file": "results/reference/countries", "columns": ",".join(missing)})
    df = countries.select(need).with_columns(
        pl.col("population").cast(pl.Int64, strict=False),
        pl.col("gdp_pc_usd").cast(pl.Float64, strict=False),
        pl.col("gdp_bucket").cast(pl.Int8, strict=False))
    bad = df.filter(pl.any_horizontal(pl.all().is_null()) | (pl.col("population") <= 0)
                    | (pl.col("gdp_pc_usd") <= 0) | ~pl.col("gdp_bucket").is_between(1, 5))
    if bad.height:
        raise EngineFailure(f"{CODE}.REF_COVERAGE", "country lacks population, currency, GDP or bucket",
                            {"file": "results/reference/countries", "country": bad["country_iso"][0]})
    return df.sort("country_iso")


# ---------------------------------------------------------------- universe

def inverse_cdf(weights: np.ndarray, u: np.ndarray) -> np.ndarray:
    cdf = np.cumsum(weights)
    idx = np.searchsorted(cdf, u * cdf[-1], side="right")
    return np.minimum(idx, len(weights) - 1)


def draw_universe(ctx: RunContext, cref: pl.DataFrame, mcc_codes: np.ndarray, mix: dict, cm: dict,
                  trace: rng.RngTrace) -> pl.DataFrame:
    """Home ~ card-market weight, MCC ~ merchant-mix share, channel ~ the MCC group's p_cnp."""
    m = ctx.world["merchants"]
    ids = np.arange(1, m + 1, dtype=np.uint64)
    st = streams(ctx, "universe", ids)
    u, end = kernels.uniforms(st, 3)
    trace.add_states(f"{SEG}.universe", st, end)
    home_idx = inverse_cdf(card_market_weights(cref, cm), u[:, 0])
    mt = mix_table(mix, mcc_codes, CODE)
    pick = inverse_cdf(mt["weight"].to_numpy(), u[:, 1])
    mcc = mt["mcc"].to_numpy()[pick]
    cnp = u[:, 2] < mt["p_cnp"].to_numpy()[pick]
    return pl.DataFrame({
        "merchant_id": ids,
        "mcc": mcc.astype(np.int32),
        "channel": np.where(cnp, CHANNELS[1], CHANNELS[0]),
        "home_country_iso": cref["country_iso"].to_numpy()[home_idx],
    })


# ---------------------------------------------------------------- features

def openness(b: np.ndarray, channel: np.ndarray, mcc: np.ndarray, op: dict) -> np.ndarray:
    x = np.array([op["bucket_base"][str(v)] for v in range(1, 6)])[b - 1]
    x = x + np.where(channel == CHANNELS[1], op["channel_delta"][CHANNELS[1]], op["channel_delta"][CHANNELS[0]])
    for t in op["mcc_tilts"]:
        x = x + np.where(mcc_in(mcc, t["codes"], t["ranges"]), t["delta"], 0.0)
    return np.clip(x, 0.0, 1.0)


def check_eligibility_rules(rules: list[dict], country_isos: set[str], mcc_codes: set[int]) -> None:
    ids = [r["id"] for r in rules]
    if len(set(ids)) != len(ids):
        raise EngineFailure(f"{CODE}.ELIG_RULE_INVALID", "duplicate eligibility rule id",
                            {"file": "config/1A/crossborder.yaml", "field": "eligibility.rules"})
    for r in rules:
        bad_iso = sorted(set(r.get("iso", [])) - country_isos)
        if bad_iso:
            raise EngineFailure(f"{CODE}.ELIG_RULE_INVALID", f"rule names unknown country {bad_iso[0]}",
                                {"file": "config/1A/crossborder.yaml", "rule": r["id"]})
        bad_mcc = sorted(set(r.get("mcc", {}).get("codes", [])) - mcc_codes)
        if bad_mcc:
            raise EngineFailure(f"{CODE}.ELIG_RULE_INVALID", f"rule names MCC {bad_mcc[0]}, which is not in "
                                "results/reference/mcc_codes", {"file": "config/1A/crossborder.yaml", "rule": r["id"]})
        for lo, hi in r.get("mcc", {}).get("ranges", []):
            if lo > hi:
                raise EngineFailure(f"{CODE}.ELIG_RULE_INVALID", f"MCC range [{lo}, {hi}] is reversed",
                                    {"file": "config/1A/crossborder.yaml", "rule": r["id"]})


def eligibility(home: np.ndarray, channel: np.ndarray, mcc: np.ndarray, elig: dict) -> tuple[np.ndarray, np.ndarray]:
    """Winning rule per merchant: deny before allow, then priority, then id (ASCII)."""
    n = len(home)
    decided = np.zeros(n, dtype=bool)
    allow = np.full(n, elig["default_decision"] == "allow")
    reason = np.full(n, f"default_{elig['default_decision']}", dtype=object)
    order = sorted(elig["rules"], key=lambda r: (r["decision"] != "deny", r["priority"], r["id"]))
    for r in order:
        m = ~decided
        if "iso" in r:
            m &= np.isin(home, r["iso"])
        if "channel" in r:
            m &= np.isin(channel, r["channel"])
        if "mcc" in r:
            m &= mcc_in(mcc, r["mcc"].get("codes", []), r["mcc"].get("ranges", []))
        allow[m] = r["decision"] == "allow"
        reason[m] = r["reason"]
        decided |= m
    return allow, reason.astype(str)


def _bisect(f, lo: float, hi: float, target: float, iters: int, name: str) -> float:
    flo, fhi = f(lo), f(hi)
    if not (flo <= target <= fhi):
        raise EngineFailure(f"{CODE}.CALIBRATION_BRACKET",
                            f"bracket [{lo}, {hi}] gives [{flo:.4g}, {fhi:.4g}], which misses target {target}",
                            {"file": "config/1A/hurdle_nb.yaml", "field": f"calibration.brackets.{name}"})
    for _ in range(iters):          # fixed count, no early stop: byte-stable
        mid = 0.5 * (lo + hi)
        if f(mid) < target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def model_parameters(merchants: pl.DataFrame, gdp: np.ndarray, bucket: np.ndarray, hn: dict) -> dict:
    """η, π, μ, φ with the calibrated bases (S0 steps 5-6)."""
    mcc = merchants["mcc"].to_numpy().astype(np.int64)
    cnp = merchants["channel"].to_numpy() == CHANNELS[1]
    ch = lambda blk: np.where(cnp, blk["channel"][CHANNELS[1]], blk["channel"][CHANNELS[0]])
    h, mn, ds, cal, cl = hn["hurdle"], hn["nb_mean"], hn["nb_dispersion"], hn["calibration"], hn["clamps"]
    eta_off = ch(h) + np.array([h["gdp_bucket"][str(v)] for v in range(1, 6)])[bucket - 1] + mcc_offsets(mcc, h)
    mu_off = ch(mn) + mcc_offsets(mcc, mn)
    phi_off = ds["gdp_log_slope"] * detmath.log(gdp) + ch(ds) + mcc_offsets(mcc, ds)
    pi_of = lambda b: np.clip(sigmoid(b + eta_off), *cl["pi"])
    mu_of = lambda b: np.clip(detmath.exp(b + mu_off), *cl["mu"])
    phi_of = lambda b: np.clip(detmath.exp(b + phi_off), *cl["phi"])
    base = {"logit": h["base_logit"], "log_mu": mn["base_log_mean"], "log_phi": ds["base_log_phi"]}
    if cal["enabled"]:
        it, br = cal["fixed_iters"], cal["brackets"]
        base["logit"] = _bisect(lambda b: float(np.mean(pi_of(b))), *br["logit"], cal["mean_pi_target"], it, "logit")
        pi = pi_of(base["logit"])
        base["log_mu"] = _bisect(lambda b: float(np.sum(pi * mu_of(b)) / np.sum(pi)), *br["log_mu"],
                                 cal["mean_mu_target_multi"], it, "log_mu")
        base["log_phi"] = _bisect(lambda b: float(np.median(phi_of(b))), *br["log_phi"],
                                  cal["median_phi_target"], it, "log_phi")
    out = {"eta_hurdle": base["logit"] + eta_off, "pi": pi_of(base["logit"]),
           "mu": mu_of(base["log_mu"]), "phi": phi_of(base["log_phi"]), "base": base}
    for k in ("eta_hurdle", "pi", "mu", "phi"):
        if not np.all(np.isfinite(out[k])):
            raise EngineFailure(f"{CODE}.NUMERIC_INVALID", f"non-finite {k}", {"file": "config/1A/hurdle_nb.yaml"})
    return out


def nb_acceptance(mu: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Per-attempt P(K >= 2) of the NB(μ, φ) draw: 1 - P0 - P1 (log space)."""
    logp = detmath.log(phi) - detmath.log(mu + phi)
    p0 = detmath.exp(phi * logp)
    p1 = phi * (mu / (mu + phi)) * p0
    return 1.0 - p0 - p1


def predicted_rejection_rate(pi: np.ndarray, alpha: np.ndarray) -> float:
    return float(np.sum(pi * (1.0 / alpha - 1.0)) / np.sum(pi / alpha))


def build_features(merchants: pl.DataFrame, cref: pl.DataFrame, cb: dict, hn: dict) -> tuple[pl.DataFrame, dict]:
    joined = merchants.join(cref.select("country_iso", "gdp_pc_usd", "gdp_bucket"),
                            left_on="home_country_iso", right_on="country_iso", how="left", maintain_order="left")
    gdp = joined["gdp_pc_usd"].to_numpy()
    bucket = joined["gdp_bucket"].to_numpy().astype(np.int64)
    mcc = merchants["mcc"].to_numpy().astype(np.int64)
    channel = merchants["channel"].to_numpy()
    allow, reason = eligibility(merchants["home_country_iso"].to_numpy(), channel, mcc, cb["eligibility"])
    par = model_parameters(merchants, gdp, bucket, hn)
    feats = pl.DataFrame({
        "merchant_id": merchants["merchant_id"],
        "gdp_pc_usd": gdp, "gdp_bucket": bucket.astype(np.int8),
        "openness": openness(bucket, channel, mcc, cb["openness"]),
        "is_eligible": allow, "eligibility_reason": reason,
        "eta_hurdle": par["eta_hurdle"], "pi": par["pi"], "mu": par["mu"], "phi": par["phi"],
    })
    return feats, par["base"]


# ---------------------------------------------------------------- state

def run(ctx: RunContext) -> None:
    rep = state_report("S0")
    pol = {name: policy(ctx, name) for name in POLICIES}
    countries, mccs = load_reference(ctx)
    cref = build_country_ref(countries)
    mcc_codes = np.sort(mccs["mcc"].cast(pl.Int64).to_numpy())
    check_eligibility_rules(pol["crossborder"]["eligibility"]["rules"], set(cref["country_iso"]),
                            set(mcc_codes.tolist()))

    trace = rng.RngTrace()
    merchants = draw_universe(ctx, cref, mcc_codes, pol["merchant_mix"], pol["card_market"], trace)
    feats, base = build_features(merchants, cref, pol["crossborder"], pol["hurdle_nb"])

    # invariants
    min_distinct = pol["validation"]["min_distinct_homes"][ctx.world["preset"]]
    n_homes = merchants["home_country_iso"].n_unique()
    if n_homes < min_distinct:
        raise EngineFailure(f"{CODE}.UNIVERSE_DEGENERATE", f"only {n_homes} distinct home countries, "
                            f"need {min_distinct}", {"file": "config/1A/validation.yaml", "field": "min_distinct_homes"})
    alpha = nb_acceptance(feats["mu"].to_numpy(), feats["phi"].to_numpy())
    rate = predicted_rejection_rate(feats["pi"].to_numpy(), alpha)
    if rate > pol["hurdle_nb"]["preflight_rejection_max"]:
        raise EngineFailure(f"{CODE}.NB_PREFLIGHT", f"predicted NB rejection rate {rate:.4f} exceeds "
                            f"{pol['hurdle_nb']['preflight_rejection_max']}", {"file": "config/1A/hurdle_nb.yaml"})

    datasets.publish(ctx, cref, "country_ref", CODE)
    datasets.publish(ctx, merchants, "merchant_ids", CODE)
    datasets.publish(ctx, feats, "merchant_features", CODE)
    run_gate(ctx, CODE, {"calibrated_bases": base, "preflight_nb_rejection_rate": rate})
    rep.count(merchants=merchants.height, countries=cref.height, distinct_homes=n_homes,
              cnp=int((merchants["channel"] == CHANNELS[1]).sum()), eligible=int(feats["is_eligible"].sum()))
    rep.data["calibrated_bases"] = base
    rep.rng(write_trace(ctx, "S0", trace))
    rep.write(report_path(ctx, "S0"))
