"""5A arrival scale: expected arrivals of a preset and the authoring-time calibration of global_multiplier
and of the per-preset `preset_volume_scale` (demand_scale_policy_5A).

Expected arrivals before overlays = Σ_zones w_eff · horizon_days / 7 (the baseline week laid over the
horizon); after overlays it is the exact Σ λ_utc of S4 (`StreamStats.total`). DESIGN §8 targets:
~1e4 (tiny), ~1e7 (dev), ~1e8 (full).
"""
from __future__ import annotations

import math

import numpy as np
import polars as pl

from .baseline import tail_lift
from .classify import classify, merchant_zones, preset_volume_scale
from .synthetic import synthetic_upstream

DESIGN_ARRIVALS = {"tiny": 1e4, "dev": 1e7, "full": 1e8}


def expected_arrivals(w_eff: np.ndarray, horizon_days: float) -> float:
    """Expected arrivals over the horizon before overlays (fixed-order sum)."""
    return math.fsum(np.asarray(w_eff, np.float64).tolist()) * horizon_days / 7.0


def profile_for(n_merchants: int, policies: dict, parameter_hash: str, seed: int = 7,
                preset: str | None = None) -> pl.DataFrame:
    up = synthetic_upstream(n_merchants, seed)
    z = merchant_zones(up["zone_alloc"], up["site_timezones"])
    ds = policies["demand_scale_policy_5A"]
    return classify(z, up["merchant_ids"], up["virtual_classification_3B"], policies["merchant_class_policy_5A"],
                    ds, parameter_hash, preset_volume_scale(ds, preset))


SEEDS = tuple(range(1, 11))      # synthetic upstreams averaged over: one 50-merchant draw varies by ±40%


def preset_arrivals(config: dict, policies: dict, parameter_hash: str = "0" * 64,
                    seeds: tuple[int, ...] = SEEDS) -> dict[str, dict]:
    """Per preset of config.yaml: merchant-zones, sites, Σw_eff per week and expected arrivals on synthetic
    upstreams of the preset's size (INTERFACES §5 shapes), each the mean over `seeds`, next to the DESIGN §8
    target."""
    ds = policies["demand_scale_policy_5A"]
    out = {}
    for name, spec in config["presets"].items():
        rows = []
        for seed in seeds:
            prof = profile_for(int(spec["merchants"]), policies, parameter_hash, seed, name)
            w_eff = prof["weekly_volume_expected"].to_numpy() * tail_lift(prof, ds,
                                                                          policies["baseline_intensity_policy_5A"])
            rows.append((prof.height, int(prof["zone_site_count"].sum()), math.fsum(w_eff.tolist()),
                         expected_arrivals(w_eff, spec["horizon_days"])))
        mz, sites, weekly, exp_ = (float(np.mean(c)) for c in zip(*rows))
        out[name] = {"merchants": int(spec["merchants"]), "seeds": len(seeds), "merchant_zones": mz, "sites": sites,
                     "preset_volume_scale": preset_volume_scale(ds, name), "mean_per_site_weekly": weekly / sites,
                     "weekly_volume": weekly, "horizon_days": spec["horizon_days"], "expected_arrivals": exp_,
                     "expected_arrivals_min_max": [min(r[3] for r in rows), max(r[3] for r in rows)],
                     "design_target": DESIGN_ARRIVALS.get(name),
                     "log10_ratio": (math.log10(exp_ / DESIGN_ARRIVALS[name]) if name in DESIGN_ARRIVALS and exp_ > 0
                                     else None)}
    return out


def calibrate_global_multiplier(policies: dict, n_merchants: int = 2000, parameter_hash: str = "0" * 64) -> float:
    """Chapter 5A §S1: G = clamp(target / (Σw/Σn at G = 1), 0.25, 4.0), on the synthetic dev world."""
    p = {k: dict(v) for k, v in policies.items()}
    p["demand_scale_policy_5A"] = dict(policies["demand_scale_policy_5A"], global_multiplier=1.0)
    prof = profile_for(n_merchants, p, parameter_hash)
    per_site = prof["weekly_volume_expected"].sum() / prof["zone_site_count"].sum()
    target = policies["demand_scale_policy_5A"]["realism_targets"]["target_mean_per_site_weekly"]
    return float(min(4.0, max(0.25, target / per_site)))


def calibrate_preset_scales(config: dict, policies: dict, parameter_hash: str = "0" * 64,
                            rounds: int = 3) -> dict[str, float]:
    """preset_volume_scale per DESIGN §8 preset: s ← s · target / E(s) from s = 1, `rounds` times (the soft cap on
    weekly volumes makes E(s) slightly sub-linear), rounded to 3 significant digits."""
    out = {}
    for name in (n for n in config["presets"] if n in DESIGN_ARRIVALS):
        cfg = dict(config, presets={name: config["presets"][name]})
        s = 1.0
        for _ in range(rounds):
            ds = dict(policies["demand_scale_policy_5A"], preset_volume_scale={name: s})
            got = preset_arrivals(cfg, dict(policies, demand_scale_policy_5A=ds), parameter_hash)[name]
            s *= DESIGN_ARRIVALS[name] / got["expected_arrivals"]
        out[name] = float(f"{s:.3g}")
    return out


def main() -> None:
    """`python -m engine.seg5A.scale`: expected arrivals per preset and the calibrated G, as JSON."""
    import json

    import yaml

    from engine.core.contracts import ROOT

    from .common import load_policies
    pol = load_policies()
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    print(json.dumps({"presets": preset_arrivals(cfg, pol),
                      "global_multiplier_configured": pol["demand_scale_policy_5A"]["global_multiplier"],
                      "global_multiplier_calibrated": calibrate_global_multiplier(pol),
                      "preset_volume_scale_configured": pol["demand_scale_policy_5A"].get("preset_volume_scale"),
                      "preset_volume_scale_calibrated": calibrate_preset_scales(cfg, pol)}, indent=1))


if __name__ == "__main__":
    main()
