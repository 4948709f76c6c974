"""Shared 3A helpers: segment bookkeeping, policies from the declared paths, the prior pack, versions."""
from __future__ import annotations

import polars as pl

from engine.core.context import RunContext
from engine.core.contracts import load_policy
from engine.core.segment import Segment

from . import priors

SEG = "3A"
PAIR = ["merchant_id", "legal_country_iso"]
NAMES = ("zone_mixture_policy", "country_zone_alphas", "zone_floor_policy", "validation")

_SEGMENT = Segment(SEG)
state_report = _SEGMENT.report
report_path = _SEGMENT.report_path
write_trace = _SEGMENT.write_trace


def load_policies(ctx: RunContext, state: str) -> dict[str, dict]:
    """The 3A policies this state declares (schema-checked, finite), by name."""
    return {n: _SEGMENT.policy(ctx, n, state) for n in NAMES if ctx.io.has_input(f"policy_{SEG}_{n}")}


def pack(pol: dict, state: str) -> pl.DataFrame:
    """The prior pack Z(c) with its authoring sanity bounds (`3A.<state>.POLICY_SANITY_FAILED`)."""
    return priors.pack_frame(pol["country_zone_alphas"], f"{SEG}.{state}")


def versions(ctx: RunContext, pol: dict, state: str) -> dict[str, str]:
    """The policy versions zone_alloc carries; 2B's day-effect policy is read for its version only."""
    de = load_policy(ctx.io.policy("2B", "day_effects"), "2B", "day_effects", f"{SEG}.{state}")
    return {"prior_pack_version": str(pol["country_zone_alphas"]["version"]),
            "floor_policy_version": str(pol["zone_floor_policy"]["version"]),
            "mixture_policy_version": str(pol["zone_mixture_policy"]["version"]),
            "day_effect_policy_version": str(de["semver"])}
