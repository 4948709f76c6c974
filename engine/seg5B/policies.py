"""5B policies: load config/5B/*.yaml (schema, finite, in range) plus the checks a schema cannot
express (ordered bounds, class maps covering the 5A class catalogue)."""
from __future__ import annotations

from pathlib import Path

from engine.core.contracts import load_policy, policy_invalid
from engine.core.errors import EngineFailure

SEG = "5B"
NAMES = ("time_grid_policy_5B", "grouping_policy_5B", "arrival_lgcp_config_5B", "arrival_count_config_5B",
         "arrival_time_placement_policy_5B", "arrival_routing_policy_5B", "arrival_rng_policy_5B",
         "validation_policy_5B")
# The 5A demand-class catalogue (spec 5A.md, merchant_class_policy_5A.demand_class_catalog). S1 checks
# the classes 5A actually emits against the maps as well (`check_classes`).
DEMAND_CLASSES = ("always_on_local", "bills_utilities", "consumer_daytime", "evening_weekend", "fuel_convenience",
                  "low_volume_tail", "office_hours", "online_24h", "online_bursty", "travel_hospitality")
CHANNELS = ("card_present", "card_not_present", "mixed")
MODES = ("NON_VIRTUAL", "HYBRID", "VIRTUAL_ONLY")          # code = position


def load_policies(cfg_dir: Path, state: str = "S0", classes=DEMAND_CLASSES) -> dict[str, dict]:
    code = f"{SEG}.{state}"
    cfg_dir = Path(cfg_dir)
    docs = {n: load_policy(cfg_dir / f"{n}.yaml", SEG, n, code) for n in NAMES}
    for name, field in (("arrival_lgcp_config_5B", "sigma_bounds"), ("arrival_lgcp_config_5B", "length_scale_bounds"),
                        ("arrival_count_config_5B", "kappa_bounds")):
        lo, hi = docs[name][field]
        if lo > hi:
            raise policy_invalid(code, cfg_dir / f"{name}.yaml", field, f"lower bound {lo} above upper {hi}")
    tg = docs["time_grid_policy_5B"]
    if tg["min_horizon_days"] > tg["max_horizon_days"]:
        raise policy_invalid(code, cfg_dir / "time_grid_policy_5B.yaml", "min_horizon_days", "above max_horizon_days")
    check_classes(docs, classes, state)
    return docs


def check_classes(docs: dict, classes, state: str) -> None:
    """Every class map covers every demand_class: a missing class is a named failure, never 1.0."""
    need = set(classes)
    lg = docs["arrival_lgcp_config_5B"]
    for field, m in (("sigma.class_multipliers", lg["sigma"]["class_multipliers"]),
                     ("length_scale.class_multipliers", lg["length_scale"]["class_multipliers"])):
        miss = sorted(need - set(m))
        if miss:
            raise EngineFailure(f"{SEG}.S2.LGCP_CONFIG_INVALID", f"{field} lacks demand classes",
                                {"state": state, "missing": ",".join(miss)})
    miss = sorted(need - set(docs["arrival_count_config_5B"]["nb2"]["kappa"]["class_multipliers"]))
    if miss:
        raise EngineFailure(f"{SEG}.S3.COUNT_CONFIG_INVALID", "nb2.kappa.class_multipliers lacks demand classes",
                            {"state": state, "missing": ",".join(miss)})
