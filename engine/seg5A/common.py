"""5A shared pieces: the policy set (loaded, schema-checked and cross-checked) and the `u_det` law.

5A is RNG-free (chapter 5A §1): every per-key choice is a hash uniform `u_det(tag, *keys)`, one SHA-256 per
coarse key (merchant-zone, template key, calendar choice), never per bucket or per event.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import polars as pl

from engine.core.contracts import ROOT
from engine.core.errors import EngineFailure
from engine.core.hash_uniform import u64_to_u01
from engine.core.sha256 import sha256_rows, words_to_u64

SEGMENT = "5A"
POLICY_NAMES = (
    "merchant_class_policy_5A", "demand_scale_policy_5A", "shape_time_grid_policy_5A", "shape_library_5A",
    "zone_shape_modifiers_5A", "baseline_intensity_policy_5A", "scenario_horizon_config_5A",
    "scenario_overlay_policy_5A", "overlay_ordering_policy_5A", "scenario_calendar_generator_5A",
)
EVENT_TYPES = ("OUTAGE", "STRESS", "CAMPAIGN", "PAYDAY", "HOLIDAY")   # kernel codes 0..4
CHANNEL_GROUPS = ("card_not_present", "card_present", "mixed")         # sorted: codes are stable
VIRTUAL_MODES = ("HYBRID", "NON_VIRTUAL", "VIRTUAL_ONLY")
HASH_UNIFORM_TAGS = ("5A.scale|per_site", "5A.S2.template", "5A.calendar")  # listed in the S0 receipt

_TWO53 = float(1 << 53)
_ONE_MINUS = 1.0 - 2.0 ** -53


def u_from_digest(d: bytes) -> float:
    """Hash uniform of a SHA-256 digest: x = BE64(d[0:8]), u = ((x >> 11) + 0.5) / 2^53 (INTERFACES §4:
    hash-uniform labels use DESIGN's open-interval map, never (x + 0.5)/2^64, which can reach 1.0)."""
    x = int.from_bytes(d[:8], "big")
    return min(((x >> 11) + 0.5) / _TWO53, _ONE_MINUS)


def _render(k) -> str:
    if isinstance(k, (bool, np.bool_)):
        raise TypeError("u_det keys are ints or strings")
    if isinstance(k, (int, np.integer)):
        return str(int(k))
    return str(k)


def u_det_digest(tag: str, *keys) -> bytes:
    """SHA-256 of UTF8(tag + "|" + "|".join(keys)); keys rendered canonically (ints in decimal)."""
    return hashlib.sha256("|".join([tag, *map(_render, keys)]).encode()).digest()


def u_det(tag: str, *keys) -> float:
    """Deterministic uniform in (0, 1) for (tag, keys); not an RNG stream, no trace."""
    return u_from_digest(u_det_digest(tag, *keys))


def u_det_columns(tag: str, *columns) -> tuple[np.ndarray, np.ndarray]:
    """(u float64[n], x uint64[n]) for n key tuples given column-wise: one SHA-256 per coarse key,
    batched in the core numba kernel (engine.core.hash_uniform), never a Python loop per row."""
    cols = [(c if isinstance(c, pl.Series) else pl.Series(values=c)).cast(pl.String)
            for c in columns]
    n = len(cols[0]) if cols else 0
    msg = pl.select(pl.concat_str([pl.repeat(pl.lit(""), n)] + cols, separator="|")).to_series()
    x = words_to_u64(sha256_rows(msg.to_arrow(), tag.encode()), 0)
    return u64_to_u01(x), x


# ---------------------------------------------------------------------------------------------- policies
def load_policies(root: Path = ROOT, code_prefix: str = "5A.S0") -> dict[str, dict]:
    """Every config/5A policy, schema-checked (`<code>.POLICY_SCHEMA_INVALID` names file and key) and
    cross-checked (`<code>.POLICY_CROSSREF_INVALID`)."""
    from engine.core.workflow import ConfigError, check_policy
    out = {}
    for name in POLICY_NAMES:
        path = Path(root) / "config" / SEGMENT / f"{name}.yaml"
        if not path.exists():
            raise EngineFailure(f"{code_prefix}.REQUIRED_POLICY_MISSING", "5A policy file missing", {"file": str(path)})
        try:
            out[name] = check_policy(path, SEGMENT, name)
        except ConfigError as exc:
            raise EngineFailure(f"{code_prefix}.POLICY_SCHEMA_INVALID", str(exc), {"file": str(path)}) from None
    cross_check(out, code_prefix)
    return out


def _xref(code_prefix: str, msg: str, **ctx) -> EngineFailure:
    return EngineFailure(f"{code_prefix}.POLICY_CROSSREF_INVALID", msg, ctx)


def cross_check(p: dict[str, dict], code_prefix: str = "5A.S0") -> None:
    """The files against each other (chapter 5A §S0 step 2)."""
    mc, ds, lib = p["merchant_class_policy_5A"], p["demand_scale_policy_5A"], p["shape_library_5A"]
    classes = set(mc["demand_class_catalog"])
    sectors = set(mc["sectors"])
    params = [c["demand_class"] for c in ds["class_params"]]
    if sorted(params) != sorted(classes):
        raise _xref(code_prefix, "class_params must list every catalog class exactly once",
                    missing=",".join(sorted(classes - set(params))), extra=",".join(sorted(set(params) - classes)))
    for c in ds["class_params"]:
        if c["clip_max_per_site_weekly"] < 10 * c["median_per_site_weekly"]:
            raise _xref(code_prefix, "clip_max_per_site_weekly must be >= 10x the median", demand_class=c["demand_class"])
    rng = sorted((r["lo"], r["hi"], r["sector"]) for r in mc["mcc_sector_map"]["ranges"])
    for (lo, hi, s), nxt in zip(rng, rng[1:] + [None]):
        if lo > hi or (nxt is not None and nxt[0] <= hi):
            raise _xref(code_prefix, "mcc_sector_map ranges must be ordered and non-overlapping", lo=lo, hi=hi)
    used = {r[2] for r in rng} | set(mc["mcc_sector_map"]["exact"].values())
    if not used <= sectors:
        raise _xref(code_prefix, "mcc_sector_map names an unknown sector", sectors=",".join(sorted(used - sectors)))
    tree = mc["decision_tree_v1"]
    for cg, m in tree["nonvirtual_branch"]["by_channel_group"].items():
        if set(m) - sectors or not set(m.values()) <= classes:
            raise _xref(code_prefix, "decision tree names an unknown sector or class", channel_group=cg)
    if not set(tree["virtual_branch"].values()) | {mc["default_class"]} <= classes:
        raise _xref(code_prefix, "virtual_branch/default_class not in the catalog")
    tids = [t["template_id"] for t in lib["templates"]]
    if len(set(tids)) != len(tids):
        raise _xref(code_prefix, "duplicate template_id in shape_library_5A")
    rules = {r["demand_class"]: r for r in lib["template_resolution"]["rules"]}
    if set(rules) != classes or len(rules) != len(lib["template_resolution"]["rules"]):
        raise _xref(code_prefix, "template_resolution needs exactly one rule per catalog class")
    for r in rules.values():
        for cg in CHANNEL_GROUPS:
            if r[cg] not in tids:
                raise _xref(code_prefix, "resolution rule names an unknown template", demand_class=r["demand_class"],
                            template_id=r[cg])
    if lib["template_resolution"]["default_template_id"] not in tids:
        raise _xref(code_prefix, "default_template_id is not a template")
    zm = p["zone_shape_modifiers_5A"]
    prof = {q["profile_id"] for q in zm["profiles"]}
    want = {f"{zm['zone_group_mode']['prefix']}{i}" for i in range(zm["zone_group_mode"]["buckets"])}
    forced = {o["force_profile_id"] for o in zm["overrides"]} | {zm["defaults"]["neutral_profile_id"]}
    if not (want | forced) <= prof:
        raise _xref(code_prefix, "zone profiles missing", missing=",".join(sorted((want | forced) - prof)))
    order = p["overlay_ordering_policy_5A"]
    if set(order["type_priority"]) != set(p["scenario_overlay_policy_5A"]["event_types"]):
        raise _xref(code_prefix, "overlay ordering must list every event type")
    pri = order["type_priority"]
    if sorted(EVENT_TYPES, key=lambda t: -pri[t]) != list(EVENT_TYPES):
        raise _xref(code_prefix, "type_priority must order OUTAGE > STRESS > CAMPAIGN > PAYDAY > HOLIDAY "
                    "(the fixed product order of chapter 5A §S4 step 3)")
    for et, spec in p["scenario_overlay_policy_5A"]["event_types"].items():
        lo, hi = spec["bounds"]
        if not lo <= spec["default_amplitude"] <= hi:
            raise _xref(code_prefix, "default amplitude outside its bounds", event_type=et)
    gen = p["scenario_calendar_generator_5A"]
    for block in ("payday", "holiday"):
        bad = set(gen[block]["class_amplitudes"]) - classes
        if bad:
            raise _xref(code_prefix, f"{block} amplitudes name unknown classes", classes=",".join(sorted(bad)))
    if gen["campaign"]["demand_class"] not in classes:
        raise _xref(code_prefix, "campaign demand_class not in the catalog")
