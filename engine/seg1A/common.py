"""Shared 1A helpers: policy loading, MCC rule matching, state bookkeeping."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.core import rng
from engine.core.contracts import load_policy
from engine.core.context import RunContext, StateReport
from engine.core.identity import dumps
from engine.core.publish import publish_text

SEG = "1A"
POLICIES = ("universe", "hurdle_nb", "crossborder", "currency", "selection", "allocation", "validation")
CHANNELS = ("card_present", "card_not_present")


def policy(ctx: RunContext, name: str, state: str = "S0") -> dict:
    return load_policy(ctx.cfg(SEG, f"{name}.yaml"), SEG, name, f"{SEG}.{state}")


def mcc_in(mcc: np.ndarray, codes=(), ranges=()) -> np.ndarray:
    """Mask of MCCs in an explicit code list or any inclusive [lo, hi] range."""
    mask = np.isin(mcc, np.asarray(list(codes), dtype=np.int64))
    for lo, hi in ranges:
        mask |= (mcc >= lo) & (mcc <= hi)
    return mask


def mcc_offsets(mcc: np.ndarray, block: dict) -> np.ndarray:
    """Σ matching range offsets + the exact-MCC offset, summed in a fixed order."""
    out = np.zeros(len(mcc), dtype=np.float64)
    for r in block["mcc_ranges"]:
        out += np.where((mcc >= r["lo"]) & (mcc <= r["hi"]), r["offset"], 0.0)
    for code, off in sorted(block["mcc_exact"].items(), key=lambda kv: int(kv[0])):
        out += np.where(mcc == int(code), off, 0.0)
    return out


def streams(ctx: RunContext, family: str, merchant_ids: np.ndarray) -> np.ndarray:
    """One stream per merchant for `1A.<family>` (one SHA-256 each)."""
    keys = [str(int(m)) for m in merchant_ids.tolist()]
    return rng.derive_streams(f"{SEG}.{family}", ctx.receipt["manifest_fingerprint"],
                              ctx.receipt["parameter_hash"], ctx.seed, "", keys)


def state_report(state: str) -> StateReport:
    return StateReport(SEG, state)


def report_path(ctx: RunContext, state: str) -> Path:
    return ctx.results / SEG / state / "run_report.json"


def write_trace(ctx: RunContext, state: str, trace: "rng.RngTrace") -> dict:
    d = trace.to_dict()
    publish_text(dumps(d), ctx.results / SEG / "rng" / f"{state}.trace.json", f"{SEG}.{state}", overwrite=True)
    return d


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Overflow-safe two-branch logistic."""
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    ex = np.exp(x[~pos])
    out[~pos] = ex / (1.0 + ex)
    return out
