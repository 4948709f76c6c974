"""5A.S4 horizon and the local<->UTC bucket map per zone tz (the civil-time law of engine.core.civil_time).

Horizon (INTERFACES §5, DESIGN §8): H UTC buckets of B minutes from config.yaml world.horizon_start_utc,
H = presets.<p>.horizon_days · 1440 / B.

Local slots. A zone's local timeline is cut into wall-clock slots of B minutes ("local hours" for B = 60);
slot L covers local wall time [L·B, (L+1)·B) and its week bucket k is (isoweekday − 1)·24 + hour of its
start. UTC bucket h maps to the slot holding the local time of its midpoint (chapter 5A §S4 step 1: the
midpoint settles +05:30 / +05:45 offsets). Away from offset changes this is one-to-one. At a change:
- a slot no UTC bucket maps to (spring-forward gap) follows the civil-time gap rule, "shift forward by the
  gap": its mass goes to the first UTC bucket of the next existing slot;
- a slot that c > 1 UTC buckets map to (fall-back fold) splits its mass equally, 1/c to each occurrence.
So every local slot's mass lands in the UTC grid exactly once: each local day's total is conserved across
DST changes (the chapter's "used twice" would double the repeated hour; the issue asks for conservation).
The map is a CSR per tz: UTC bucket h gathers the entries (slot L, weight w) in ptr[t, h]..ptr[t, h+1].
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from engine.core.civil_time import CivilTimeCache, utc_to_local
from engine.core.errors import EngineFailure
from engine.core.tzcache import to_unix_seconds

US_PER_MIN = 60_000_000
DAY_US = 86_400_000_000
HOUR_US = 3_600_000_000


@dataclass(frozen=True)
class Horizon:
    start_us: int          # UTC µs of bucket 0
    n_buckets: int         # H
    bucket_minutes: int    # B

    @property
    def bucket_us(self) -> int:
        return self.bucket_minutes * US_PER_MIN

    @property
    def end_us(self) -> int:
        return self.start_us + self.n_buckets * self.bucket_us

    @property
    def days(self) -> float:
        return self.n_buckets * self.bucket_minutes / 1440.0


def horizon_from_config(config: dict, preset: str | None = None, code_prefix: str = "5A.S4") -> Horizon:
    """The preset's horizon from config.yaml (world.horizon_start_utc, presets.<p>.horizon_days/bucket_minutes)."""
    p = preset or config["preset"]
    spec = dict(config["presets"][p])
    spec.update((config.get("preset_overrides") or {}).get(p, {}))
    return make_horizon(config["world"]["horizon_start_utc"], spec["horizon_days"], spec["bucket_minutes"], code_prefix)


def make_horizon(start, days: float, bucket_minutes: int, code_prefix: str = "5A.S4") -> Horizon:
    b = int(bucket_minutes)
    total = days * 1440
    if b <= 0 or 60 % b or total % b:
        raise EngineFailure(f"{code_prefix}.HORIZON_GRID_INVALID",
                            "bucket_minutes must divide 60 and the horizon must be a whole number of buckets",
                            {"horizon_days": days, "bucket_minutes": b})
    start_s = to_unix_seconds(start)
    if start_s % (b * 60):
        raise EngineFailure(f"{code_prefix}.HORIZON_GRID_INVALID", "horizon start not on a bucket boundary",
                            {"horizon_start_utc": str(start)})
    return Horizon(start_s * 1_000_000, int(total // b), b)


def iso_utc(us: int) -> str:
    return (dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=int(us))).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class LocalGrid:
    """Per zone tz (index t into `tzids`): its local slots and the CSR map onto the UTC buckets."""
    tzids: tuple[str, ...]
    horizon: Horizon
    L0: np.ndarray        # int64[n_tz]: absolute slot index (wall µs // B) of local slot 0
    nL: np.ndarray        # int32[n_tz]: number of local slots of the tz in the horizon
    k: np.ndarray         # int16[n_tz, NL]: week bucket of each slot
    day: np.ndarray       # int32[n_tz, NL]: local date of each slot, days since 1970-01-01
    rep_h: np.ndarray     # int32[n_tz, NL]: UTC bucket of the slot (first occurrence; gap -> next slot's)
    ptr: np.ndarray       # int64[n_tz, H + 1]: CSR offsets into cL / cw
    cL: np.ndarray        # int32[E]: local slot of each entry
    cw: np.ndarray        # float64[E]: weight of each entry (1, 1/c in a fold, 1 for a forwarded gap slot)
    l_of_h: np.ndarray    # int32[n_tz, H]: the slot of each UTC bucket's midpoint

    @property
    def frac(self) -> float:
        """Share of a week bucket (one hour) that one slot carries."""
        return self.horizon.bucket_minutes / 60.0

    @property
    def width(self) -> int:
        return int(self.k.shape[1])


def build_local_grid(tzids, cache: CivilTimeCache, horizon: Horizon, code_prefix: str = "5A.S4") -> LocalGrid:
    """The grid for `tzids` (sorted ASCII, the zone_representation dictionary). numpy per tz, no row loops."""
    tzids = tuple(tzids)
    if list(tzids) != sorted(tzids, key=str.encode) or len(set(tzids)) != len(tzids):
        raise ValueError("tzids must be distinct and sorted")
    H, B = horizon.n_buckets, horizon.bucket_us
    mid = horizon.start_us + np.arange(H, dtype=np.int64) * B + B // 2
    tz_index = cache.tz_index(tzids, code=f"{code_prefix}.HORIZON_GRID_INVALID") if tzids else np.zeros(0, np.int32)
    per = []
    for ti in tz_index.tolist():
        lab = np.floor_divide(utc_to_local(mid, ti, cache), B)
        L0 = int(lab.min())
        lrel = (lab - L0).astype(np.int64)
        nL = int(lrel.max()) + 1
        c = np.bincount(lrel, minlength=nL)
        first = np.full(nL, -1, np.int64)
        first[lrel[::-1]] = np.arange(H - 1, -1, -1)          # duplicates: the last write (smallest h) wins
        idx = np.where(c > 0, np.arange(nL), nL)
        nxt = np.minimum.accumulate(idx[::-1])[::-1]          # next slot with a UTC bucket (gap -> forward)
        rep = first[nxt]
        gap = np.flatnonzero(c == 0)
        eh = np.concatenate([np.arange(H), rep[gap]])
        eL = np.concatenate([lrel, gap])
        ew = np.concatenate([1.0 / c[lrel], np.ones(len(gap))])
        o = np.lexsort((eL, eh))
        ptr = np.searchsorted(eh[o], np.arange(H + 1))
        wall = (L0 + np.arange(nL, dtype=np.int64)) * B
        day = np.floor_divide(wall, DAY_US)
        k = ((day + 3) % 7) * 24 + (wall - day * DAY_US) // HOUR_US        # 1970-01-01 was a Thursday
        per.append((L0, nL, k, day, rep, ptr, eL[o], ew[o], lrel))
    n = len(per)
    NL = max([p[1] for p in per], default=0)
    kk = np.zeros((n, NL), np.int16)
    dd = np.zeros((n, NL), np.int32)
    rr = np.zeros((n, NL), np.int32)
    ptr = np.zeros((n, H + 1), np.int64)
    loh = np.zeros((n, H), np.int32)
    cLs, cws, off = [], [], 0
    for t, (L0, nL, k, day, rep, p, eL, ew, lrel) in enumerate(per):
        kk[t, :nL], dd[t, :nL], rr[t, :nL] = k, day, rep
        ptr[t] = p + off
        loh[t] = lrel
        cLs.append(eL)
        cws.append(ew)
        off += len(eL)
    return LocalGrid(tzids, horizon, np.array([p[0] for p in per], np.int64), np.array([p[1] for p in per], np.int32),
                     kk, dd, rr, ptr,
                     np.concatenate(cLs).astype(np.int32) if cLs else np.zeros(0, np.int32),
                     np.concatenate(cws) if cws else np.zeros(0), loh)
