"""Shared 1A helpers: policy loading, MCC rule matching, state bookkeeping."""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from engine.core import detmath
from engine.core.context import RunContext
from engine.core.segment import Segment

SEG = "1A"
POLICIES = ("universe", "hurdle_nb", "crossborder", "currency", "selection", "allocation", "validation",
            "merchant_mix", "card_market")
CHANNELS = ("card_present", "card_not_present")


_SEGMENT = Segment(SEG)
policy = _SEGMENT.policy
state_report = _SEGMENT.report
report_path = _SEGMENT.report_path
write_trace = _SEGMENT.write_trace


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
    """One stream per merchant for `1A.<family>`, keyed by the merchant id."""
    return _SEGMENT.streams(ctx, family, pa.array(np.asarray(merchant_ids, np.uint64)).cast(pa.string()))


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Overflow-safe two-branch logistic."""
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + detmath.exp(-x[pos]))
    ex = detmath.exp(x[~pos])
    out[~pos] = ex / (1.0 + ex)
    return out
