"""5A scenario manifest (S0): one row per scenario run, horizon from config.yaml (INTERFACES §5)."""
from __future__ import annotations

import pyarrow as pa

from engine.core.errors import EngineFailure

from .horizon import Horizon

MANIFEST_SCHEMA = pa.schema([
    ("scenario_id", pa.string()), ("scenario_version", pa.string()), ("is_baseline", pa.bool_()),
    ("is_stress", pa.bool_()), ("horizon_start_utc", pa.timestamp("us", tz="UTC")),
    ("horizon_end_utc", pa.timestamp("us", tz="UTC")), ("bucket_duration_seconds", pa.int32()),
    ("n_horizon_buckets", pa.int32()), ("calendar_sha256", pa.string()), ("n_calendar_events", pa.int32()),
    ("holidays_version", pa.string()),
])


def scenarios_to_run(config: dict, horizon_cfg: dict, code_prefix: str = "5A.S0") -> list[dict]:
    """The scenario definitions named by config.yaml `scenarios`, in that order."""
    defs = {s["scenario_id"]: s for s in horizon_cfg["scenarios"]}
    missing = [s for s in config["scenarios"] if s not in defs]
    if missing:
        raise EngineFailure(f"{code_prefix}.REQUIRED_SCENARIO_MISSING", "scenario not defined in "
                            "scenario_horizon_config_5A", {"scenarios": ",".join(missing)})
    return [defs[s] for s in config["scenarios"]]


def scenario_manifest(scenarios: list[dict], horizon: Horizon, calendars: dict[str, tuple[str, int]],
                      holidays_version: str) -> pa.Table:
    """`scenario_manifest_5A`; calendars maps scenario_id -> (calendar_sha256, n_events)."""
    rows = sorted(scenarios, key=lambda s: s["scenario_id"])
    n = len(rows)
    return pa.Table.from_arrays([
        pa.array([s["scenario_id"] for s in rows], pa.string()),
        pa.array([s["scenario_version"] for s in rows], pa.string()),
        pa.array([s["is_baseline"] for s in rows], pa.bool_()),
        pa.array([s["is_stress"] for s in rows], pa.bool_()),
        pa.array([horizon.start_us] * n, pa.timestamp("us", tz="UTC")),
        pa.array([horizon.end_us] * n, pa.timestamp("us", tz="UTC")),
        pa.array([horizon.bucket_minutes * 60] * n, pa.int32()),
        pa.array([horizon.n_buckets] * n, pa.int32()),
        pa.array([calendars[s["scenario_id"]][0] for s in rows], pa.string()),
        pa.array([calendars[s["scenario_id"]][1] for s in rows], pa.int32()),
        pa.array([holidays_version] * n, pa.string())], schema=MANIFEST_SCHEMA)
