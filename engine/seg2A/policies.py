"""2A policies: load and check config/2A/*.yaml; the tzdata pin and the cache-horizon rule."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

from engine.core.context import world
from engine.core.contracts import load_policy as load_finite_policy
from engine.core.contracts import policy_invalid as invalid
from engine.core.errors import EngineFailure

from .tz_tables import zone_tables

SEG = "2A"
NAMES = ("tz_nudge", "tz_overrides", "tz_policy", "validation")


def _date(s: str, code: str, path: Path, field: str) -> dt.date:
    try:
        return dt.date.fromisoformat(s)
    except ValueError:
        raise invalid(code, path, field, f"{s!r} is not a calendar date") from None


def load_policies(cfg_dir: Path, state: str = "S0") -> dict[str, dict]:
    """Every 2A policy, schema-checked, finite, and semantically checked (dates, tzids)."""
    code = f"{SEG}.{state}"
    cfg_dir = Path(cfg_dir)
    docs = {n: load_finite_policy(cfg_dir / f"{n}.yaml", SEG, n, code) for n in NAMES}
    p = cfg_dir / "tz_policy.yaml"
    h = docs["tz_policy"]["horizon"]
    if _date(h["start"], code, p, "horizon.start") >= _date(h["end"], code, p, "horizon.end"):
        raise invalid(code, p, "horizon", "start must be before end")
    p = cfg_dir / "tz_overrides.yaml"
    zones = zone_tables().zones
    for i, o in enumerate(docs["tz_overrides"]["overrides"]):
        if o["expiry_yyyy_mm_dd"] is not None:
            _date(o["expiry_yyyy_mm_dd"], code, p, f"overrides.{i}.expiry_yyyy_mm_dd")
        if o["tzid"] not in zones:
            raise invalid(code, p, f"overrides.{i}.tzid", f"{o['tzid']!r} is not a tzid of the pinned tzdata")
    return docs


def check_tzdata(tz_policy: dict, state: str = "S0") -> str:
    """The pinned tzdata release must be the one installed; returns its IANA version."""
    import tzdata
    if tz_policy["tzdata_version"] != tzdata.IANA_VERSION:
        raise EngineFailure(f"{SEG}.{state}.TZDATA_VERSION_MISMATCH",
                            "installed tzdata differs from tz_policy.tzdata_version; pin the wheel or update "
                            "the policy", {"policy": tz_policy["tzdata_version"], "installed": tzdata.IANA_VERSION})
    return tzdata.IANA_VERSION


def required_window(config: dict, margin_days: int) -> tuple[dt.date, dt.date]:
    """[min start - 1 d - margin, max end + 1 d + margin] over every preset (overrides applied)."""
    starts, ends = [], []
    for preset in config["presets"]:
        w = world({**config, "preset": preset})
        s = dt.datetime.fromisoformat(w["horizon_start_utc"].replace("Z", "+00:00")).date()
        starts.append(s)
        ends.append(s + dt.timedelta(days=int(w["horizon_days"])))   # horizon end is exclusive
    pad = dt.timedelta(days=1 + int(margin_days))
    return min(starts) - pad, max(ends) + pad


def check_horizon(tz_policy: dict, config: dict, state: str = "S0") -> tuple[dt.date, dt.date]:
    """tz_policy.horizon must cover every preset's horizon with the margin; returns the window."""
    lo, hi = required_window(config, tz_policy["margin_days"])
    start = dt.date.fromisoformat(tz_policy["horizon"]["start"])
    end = dt.date.fromisoformat(tz_policy["horizon"]["end"])
    if start > lo or end < hi:
        raise EngineFailure(f"{SEG}.{state}.HORIZON_NOT_COVERED",
                            "tz_policy.horizon does not cover every preset's horizon with its margin; widen it",
                            {"policy": f"{start}..{end}", "required": f"{lo}..{hi}"})
    return lo, hi
