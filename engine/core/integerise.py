"""Largest-remainder integerisation: the one implementation every segment uses.

The law, per group of rows (CSR: rows `off[g]..off[g+1]`, already in tie-break order):
floors z_i and residues r_i are computed exactly, the deficit d = T - Σz units go +1 to the
d rows with the largest residue, ties to the earlier row (so the caller's row order *is*
the tie-break). A negative deficit (float shares summing a hair above 1) takes 1 from the
|d| rows with the smallest residue, ties to the later row, never below 0.

- integer masses (`split_int`): z = (m·T) // M, r = (m·T) % M, exact in int64 (m·T < 2^63 is
  the caller's bound); a group with M = 0 splits as if every mass were 1.
- float shares (`split_float`): a = T·s, z = ⌊a⌋, r = round_half_even(a − z, dp). Only IEEE
  multiply/floor/round are used, so results do not depend on the CPU's vector features.
"""
from __future__ import annotations

import numpy as np
import polars as pl
from numba import njit


@njit(cache=True)
def give_remainder(counts, residue, lo, hi, deficit, rank):
    """Hand out `deficit` units over rows [lo, hi) by residue; writes 1-based residue ranks."""
    order = np.argsort(-residue[lo:hi], kind="mergesort")       # stable: ties keep row order
    for q in range(hi - lo):
        rank[lo + order[q]] = q + 1
    if deficit > 0:
        for q in range(deficit):
            counts[lo + order[q % (hi - lo)]] += 1
    elif deficit < 0:
        need = -deficit
        for q in range(hi - lo - 1, -1, -1):
            if need == 0:
                break
            i = lo + order[q]
            if counts[i] > 0:
                counts[i] -= 1
                need -= 1


@njit(cache=True)
def split_int(mass, off, total):
    """Integer masses -> counts per CSR group summing exactly to `total[g]`."""
    n = mass.shape[0]
    counts = np.zeros(n, np.int64)
    residue = np.zeros(n, np.int64)
    rank = np.zeros(n, np.int32)
    for g in range(off.shape[0] - 1):
        lo, hi = off[g], off[g + 1]
        if hi == lo:
            continue
        t = total[g]
        big_m = 0
        for i in range(lo, hi):
            big_m += mass[i]
        given = 0
        for i in range(lo, hi):
            m = mass[i] if big_m > 0 else 1
            p = m * t
            den = big_m if big_m > 0 else hi - lo
            counts[i] = p // den
            residue[i] = p % den
            given += counts[i]
        give_remainder(counts, residue, lo, hi, t - given, rank)
    return counts, residue, rank


@njit(cache=True)
def split_float(share, off, total, dp):
    """Float shares -> counts per CSR group summing exactly to `total[g]`; residues rounded to dp."""
    n = share.shape[0]
    counts = np.zeros(n, np.int64)
    residue = np.zeros(n, np.float64)
    rank = np.zeros(n, np.int32)
    for g in range(off.shape[0] - 1):
        lo, hi = off[g], off[g + 1]
        if hi == lo:
            continue
        t = total[g]
        given = 0
        for i in range(lo, hi):
            a = t * share[i]
            b = np.floor(a)
            r = np.round(a - b, dp)
            counts[i] = np.int64(b)
            residue[i] = r if r < 1.0 else 0.0       # a − b rounds to 1.0 only when a is integral
            given += counts[i]
        give_remainder(counts, residue, lo, hi, t - given, rank)
    return counts, residue, rank


def group_offsets(df: pl.DataFrame, group: list[str]) -> np.ndarray:
    """CSR offsets of a frame sorted by `group` (consecutive runs of equal keys)."""
    n = df.height
    if n == 0:
        return np.zeros(1, np.int64)
    change = np.zeros(n, dtype=bool)
    change[0] = True
    for c in group:
        v = df[c].to_numpy()
        change[1:] |= v[1:] != v[:-1]
    return np.append(np.flatnonzero(change), n).astype(np.int64)


def _ordered(df: pl.DataFrame, group: list[str], tie: list[tuple[str, bool]]) -> tuple[pl.DataFrame, np.ndarray]:
    by = group + [c for c, _ in tie]
    desc = [False] * len(group) + [d for _, d in tie]
    d = df.with_row_index("_row").sort(by, descending=desc, maintain_order=True)
    return d, group_offsets(d, group)


def largest_remainder(df: pl.DataFrame, group: list[str], total: str, share: str,
                      tie_break: list[tuple[str, bool]], dp: int = 8) -> pl.DataFrame:
    """Split each group's integer `total` by float `share`; ties by `tie_break` [(column, descending)].

    Adds `residual` (f64), `residual_rank` (i32, 1-based) and `count` (i64); row order is kept.
    """
    d, off = _ordered(df, group, tie_break)
    tot = d[total].cast(pl.Int64).to_numpy()[off[:-1]]
    counts, resid, rank = split_float(d[share].cast(pl.Float64).to_numpy(), off, tot, dp)
    d = d.with_columns(pl.Series("residual", resid), pl.Series("residual_rank", rank),
                       pl.Series("count", counts))
    return d.sort("_row").drop("_row")


def integer_largest_remainder(df: pl.DataFrame, group: list[str], mass: str, total: str | int,
                              tie: str, out: str = "count") -> pl.DataFrame:
    """Exact integer split of `total` (a column or a constant) by int64 `mass`; ties by ascending `tie`."""
    d, off = _ordered(df, group, [(tie, False)])
    if isinstance(total, str):
        tot = d[total].cast(pl.Int64).to_numpy()[off[:-1]]
    else:
        tot = np.full(len(off) - 1, int(total), np.int64)
    counts, _, _ = split_int(d[mass].cast(pl.Int64).to_numpy(), off, tot)
    return d.with_columns(pl.Series(out, counts)).sort("_row").drop("_row")
