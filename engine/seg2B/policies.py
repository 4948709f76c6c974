"""2B policies: load config/2B/*.yaml (schema + finite + the checks a schema cannot express),
and turn them into the small arrays the kernels take."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

from engine.core.context import world
from engine.core.contracts import load_policy as load_finite_policy
from engine.core.contracts import policy_invalid as invalid

SEG = "2B"
NAMES = ("site_weights", "day_effects", "group_mix", "routing", "validation")
BUCKETS = ("small", "mid", "large")
PROFILES = ("hub_spoke", "heavy_tail", "near_uniform")      # fixed pick order (chapter 2B.S1 step 2)
PROFILE_NAMES = ("single",) + PROFILES                        # code 0 = K = 1


def load_policies(cfg_dir: Path, state: str = "S0") -> dict[str, dict]:
    code = f"{SEG}.{state}"
    cfg_dir = Path(cfg_dir)
    docs = {n: load_finite_policy(cfg_dir / f"{n}.yaml", SEG, n, code) for n in NAMES}
    sw, p = docs["site_weights"], cfg_dir / "site_weights.yaml"
    for b in BUCKETS:
        s = sum(sw["profile_mix"][b][q] for q in PROFILES)
        if abs(s - 1.0) > 1e-9:
            raise invalid(code, p, f"profile_mix.{b}", f"probabilities sum to {s}, not 1")
    sb = sw["size_buckets"]
    edges = [sb["small"][0], sb["small"][1], sb["mid"][0], sb["mid"][1], sb["large"][0]]
    if not (edges[0] == 1 and edges[2] == edges[1] + 1 and edges[4] == edges[3] + 1
            and edges[1] >= edges[0] and edges[3] >= edges[2] and sb["large"][1] is None):
        raise invalid(code, p, "size_buckets", "buckets must tile 1..inf contiguously (small from 1, large open)")
    if sw["cap"]["mode"] == "absolute" and "value" not in sw["cap"]:
        raise invalid(code, p, "cap.value", "an absolute cap needs a value")
    de, p = docs["day_effects"], cfg_dir / "day_effects.yaml"
    if de["sigma_bounds"]["min"] >= de["sigma_bounds"]["max"]:
        raise invalid(code, p, "sigma_bounds", "min must be below max")
    return docs


def bucket_edges(sw: dict) -> np.ndarray:
    """int64[2]: last K of `small` and of `mid` (bucket = 0, 1, 2 by K)."""
    sb = sw["size_buckets"]
    return np.array([sb["small"][1], sb["mid"][1]], np.int64)


def by_bucket(d: dict) -> np.ndarray:
    return np.array([d[b] for b in BUCKETS], np.float64)


def by_bucket_profile(d: dict) -> np.ndarray:
    return np.array([[d[b][q] for q in PROFILES] for b in BUCKETS], np.float64)


def horizon_days(config: dict) -> np.ndarray:
    """The preset's UTC days as datetime64[D] (config.yaml: world.horizon_start_utc + horizon_days)."""
    w = world(config)
    start = dt.datetime.fromisoformat(w["horizon_start_utc"].replace("Z", "+00:00")).date()
    return np.datetime64(start, "D") + np.arange(int(w["horizon_days"]))


def sigma_multiplier(tzids: list[str], de: dict) -> np.ndarray:
    """First matching tz prefix in the policy's order, else `default` (one value per distinct tzid)."""
    m = de["sigma_multiplier_by_tz_prefix"]
    pref = [(k, v) for k, v in m.items() if k != "default"]
    return np.array([next((v for k, v in pref if tz.startswith(k)), m["default"]) for tz in tzids], np.float64)
