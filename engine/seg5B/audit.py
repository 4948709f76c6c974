"""5B.S5 checks that stream over ALL arrivals (Arrow batches), plus the S2/S3 realism figures.

`ArrivalAudit.update(batch)` folds one batch into fixed-size counters (a dense count per S3
row, a bitmap over arrival_seq per merchant, a tz histogram, a zoneinfo sample), so memory is
bounded by the domain, not by the number of arrivals. The zoneinfo sample is a rule per event,
(merchant_id + arrival_seq) % every == 0, not a position in the stream, so a shard of the merchants
samples exactly the events the whole run samples among them (5B.S5 run as merchant shards).
`finish()` returns the checks:
count conservation (T4), time window (V4), civil time vs the cache for every event and vs
zoneinfo (tzdata wheel) for a deterministic sample (T1/T2), routing membership and flags (T5),
PK 1..n per merchant (V5), RNG budgets vs the trace (V6), and the T6/T7 corridors.
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from engine.core.publish import one_chunk
from engine.core.tzcache import wheel_zoneinfo

from . import kernels as K
from .arrivals import CoarsePlan, RoutingPlan
from .logic import Grid
from .policies import CHANNELS

_NAMES = ("arrivals", "key_not_in_domain", "ts_outside_bucket", "civil_time_mismatch", "flag_inconsistent",
          "site_not_merchants", "site_outside_zone", "fallback_arrivals", "edge_not_merchants",
          "virtual_on_non_virtual", "physical_on_virtual_only", "seq_out_of_range", "seq_duplicate",
          "site_pick_blocks", "virtual_arrivals", "tzid_primary_wrong")


def _valid(arr: pa.Array) -> np.ndarray:
    """Validity as bools, unpacked from the bitmap (all True without nulls)."""
    if not arr.null_count:
        return np.ones(len(arr), np.bool_)
    bits = np.unpackbits(np.frombuffer(arr.buffers()[0], np.uint8), bitorder="little")
    return bits[arr.offset:arr.offset + len(arr)].view(np.bool_)


def _values(arr: pa.Array, dtype) -> np.ndarray:
    """The value buffer of a fixed-width array, zero-copy; slots under a null hold whatever the reader
    put there, and every consumer checks validity first."""
    dt_ = np.dtype(dtype)
    return np.frombuffer(arr.buffers()[1], dt_, count=len(arr), offset=arr.offset * dt_.itemsize)


def _codes(col: pa.ChunkedArray | pa.Array, values: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(int32 codes into `values`, -1 unknown or null; validity) of a dictionary/string column."""
    arr = one_chunk(col)
    if pa.types.is_dictionary(arr.type):
        d = np.asarray(pc.index_in(arr.dictionary.cast(pa.string()), value_set=pa.array(values, pa.string()))
                       .fill_null(-1), np.int32)
        out = d[_values(arr.indices, np.int32)] if len(d) else np.full(len(arr), -1, np.int32)
    else:
        out = np.asarray(pc.index_in(arr, value_set=pa.array(values, pa.string())).fill_null(-1), np.int32)
    valid = _valid(arr)
    return (np.where(valid, out, -1).astype(np.int32) if arr.null_count else out), valid


def _i64(col, dtype=np.int64) -> tuple[np.ndarray, np.ndarray]:
    arr = one_chunk(col)
    return _values(arr, dtype), _valid(arr)


@njit(cache=True, nogil=True)
def _domain_rows(m, z, ch, ck, m_c_lo, n_zones, n_chan):
    """Domain row c of each arrival's (merchant, zone, channel), -1 when not in the domain: a search
    among the merchant's own few rows, not the whole domain."""
    out = np.full(m.shape[0], -1, np.int64)
    for i in range(m.shape[0]):
        if m[i] < 0 or z[i] < 0 or ch[i] < 0:
            continue
        key = (m[i] * n_zones + z[i]) * n_chan + ch[i]
        hi = m_c_lo[m[i] + 1]
        j = K._find(ck, m_c_lo[m[i]], hi, key)
        if j < hi and ck[j] == key:
            out[i] = j
    return out


@njit(cache=True)
def sample_mask(mid: np.ndarray, seq: np.ndarray, every: np.int64) -> np.ndarray:
    """(merchant_id + arrival_seq) ≡ 0 (mod every) per event, with Python's modulo. A division where a
    merchant's run starts or seq does not step by one; otherwise the residue steps with seq (a division
    per event costs ~10% of the audit)."""
    n = len(mid)
    out = np.zeros(n, np.bool_)
    eu = np.uint64(every)
    r = np.int64(0)
    for i in range(n):
        if i == 0 or mid[i] != mid[i - 1] or not (seq[i] > seq[i - 1] and seq[i] - seq[i - 1] == 1):
            r = (np.int64(mid[i] % eu) + seq[i] % every) % every
        else:
            r += 1
            if r == every:
                r = 0
        out[i] = r == 0
    return out


class ArrivalAudit:
    def __init__(self, cp: CoarsePlan, plan: RoutingPlan, grid: Grid, count_by_row: np.ndarray | None = None,
                 row_c: np.ndarray | None = None, row_b: np.ndarray | None = None, sample_every: int = 97,
                 expected: np.ndarray | None = None):
        """Expected counts per (c, b): from S3 rows (count_by_row, row_c, row_b), or dense (C*H) `expected`."""
        self.cp, self.plan, self.g = cp, plan, grid
        C, H = len(cp.c_mid), grid.H
        if expected is None:
            expected = np.zeros(C * H, np.int64)
            np.add.at(expected, row_c.astype(np.int64) * H + row_b, count_by_row)
        self.expected = expected.astype(np.int64, copy=False)
        per_c = self.expected.reshape(C, H).sum(axis=1) if C else np.zeros(0, np.int64)
        per_m = np.bincount(cp.c_m, weights=per_c, minlength=len(plan.merchant_ids)).astype(np.int64)
        self.m_seq_off = np.concatenate([[0], np.cumsum(per_m)]).astype(np.int64)
        self.cnt = np.zeros(C * H, np.int64)
        self.seen = np.zeros(int(self.m_seq_off[-1]), np.bool_)
        self.tz_hist = np.zeros(len(plan.cache.tzids), np.int64)
        self.v = np.zeros(16, np.int64)
        self.local_hour = np.zeros(24, np.int64)       # arrivals per hour of the primary local clock
        # composite (merchant index, zone code, channel code) -> c
        self._ck = (cp.c_m * len(cp.zones) + cp.c_zone) * len(CHANNELS) + cp.c_chan
        if np.any(np.diff(self._ck) <= 0):
            raise ValueError("coarse keys not sorted")
        # a merchant's domain rows are contiguous: [lo[m], lo[m + 1])
        self._m_c_lo = np.searchsorted(cp.c_m, np.arange(len(plan.merchant_ids) + 1)).astype(np.int64)
        self.every = int(sample_every)
        self.sample: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def update(self, batch: pa.Table | pa.RecordBatch) -> None:
        t = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        n = t.num_rows
        if n == 0:
            return
        mid, _ = _i64(t.column("merchant_id"), np.uint64)
        m = self.plan.merchant_index(mid)
        z, _ = _codes(t.column("zone_representation"), self.cp.zones)
        ch, _ = _codes(t.column("channel_group"), CHANNELS)
        c = _domain_rows(m, z, ch, self._ck, self._m_c_lo, len(self.cp.zones), len(CHANNELS))
        tz = self.plan.cache.tzids
        tzp, _ = _codes(t.column("tzid_primary"), tz)
        tzo, opv = _codes(t.column("tzid_operational"), tz)
        tzs, stv = _codes(t.column("tzid_settlement"), tz)
        ts, _ = _i64(t.column("ts_utc"))
        locp, _ = _i64(t.column("ts_local_primary"))
        loco, _ = _i64(t.column("ts_local_operational"))
        locs, _ = _i64(t.column("ts_local_settlement"))
        site, sv = _i64(t.column("site_id"), np.uint64)
        edge, ev = _i64(t.column("edge_id"), np.uint64)
        b, _ = _i64(t.column("bucket_index"), np.int32)
        seq, _ = _i64(t.column("arrival_seq"))
        virt = one_chunk(t.column("is_virtual")).to_numpy(zero_copy_only=False).astype(np.bool_, copy=False)
        ca, p, cc = self.cp, self.plan, self.plan.cache
        K.audit_batch(m, c, b, ts, seq, virt, sv, site, ev,
                      edge, tzp, locp, opv, tzo, loco, stv, tzs, locs, ca.zone_tz,
                      self.g.H, np.int64(self.g.h0_us), np.int64(self.g.d_us), cc.tz_start, cc.trans_us, cc.offset_us,
                      p.m_mode, self.m_seq_off, p.m_settle_tz, ca.c_fallback, p.ms_off, p.ms_site, p.ms_tz,
                      p.me_off, p.me_edge, p.me_tz, self.cnt, self.seen, self.tz_hist, self.v)
        self.local_hour += np.bincount(np.floor_divide(locp, 3_600_000_000) % 24, minlength=24)[:24]
        # deterministic sample: a rule per event, ~1 in `every` of each merchant's arrivals
        pick = np.flatnonzero(sample_mask(mid, seq, np.int64(self.every)))
        if len(pick):
            self.sample.append((ts[pick], tzp[pick], locp[pick]))

    def _zoneinfo(self) -> dict:
        if not self.sample:
            return {"sample": 0, "mismatch": 0, "one_hour": 0}
        ts = np.concatenate([s[0] for s in self.sample])
        tz = np.concatenate([s[1] for s in self.sample])
        loc = np.concatenate([s[2] for s in self.sample])
        mism = one_hour = 0
        for t in np.unique(tz):
            sel = np.flatnonzero(tz == t)
            if t < 0:
                mism += len(sel)
                continue
            zi = wheel_zoneinfo(self.plan.cache.tzids[t], "5B.S5")
            # the reference: stdlib zoneinfo from the pinned wheel, one conversion per sampled arrival (the
            # offset in force at the arrival's second: transitions fall on whole seconds)
            us = dt.timedelta(microseconds=1)
            off = np.array([dt.datetime.fromtimestamp(x, zi).utcoffset() // us
                            for x in (ts[sel] // 1_000_000).tolist()], np.int64)
            want = ts[sel] + off
            d = loc[sel] - want
            mism += int(np.count_nonzero(d))
            one_hour += int(np.count_nonzero(np.abs(d) == 3_600_000_000))
        return {"sample": int(len(ts)), "mismatch": mism, "one_hour": one_hour}

    def finish(self, trace: dict | None = None) -> dict:
        v = {k: int(x) for k, x in zip(_NAMES, self.v)}
        diff = self.cnt - self.expected
        out = {"counts": v,
               "conservation": {"total_expected": int(self.expected.sum()), "total_seen": int(self.cnt.sum()),
                                "rows_mismatched": int(np.count_nonzero(diff)), "abs_diff": int(np.abs(diff).sum())},
               "pk_missing": int(self.seen.size - np.count_nonzero(self.seen)),
               "zoneinfo": self._zoneinfo()}
        out.update(derived(v, self.tz_hist))
        out["local_hour"] = self.local_hour.tolist()
        if trace is not None:
            out["rng_mismatch"] = sorted(f for f, e in out["rng_expected"].items()
                                         if f not in trace or trace[f]["blocks"] != e["blocks"]
                                         or trace[f]["draws"] != e["draws"])
        hard = ("key_not_in_domain", "ts_outside_bucket", "civil_time_mismatch", "flag_inconsistent",
                "site_not_merchants", "site_outside_zone", "edge_not_merchants", "virtual_on_non_virtual",
                "physical_on_virtual_only", "seq_out_of_range", "seq_duplicate", "tzid_primary_wrong")
        out["failed"] = [k for k in hard if v[k]]
        if out["conservation"]["rows_mismatched"]:
            out["failed"].append("count_conservation")
        if out["pk_missing"]:
            out["failed"].append("pk_missing")
        if out["zoneinfo"]["mismatch"]:
            out["failed"].append("zoneinfo_mismatch")
        if out.get("rng_mismatch"):
            out["failed"].append("rng_accounting")
        return out


def derived(v: dict, tz_hist: np.ndarray) -> dict:
    """T6/T7 figures and the S4 RNG budgets from the counters (additive: the same from merged shards)."""
    n = max(v["arrivals"], 1)
    top = np.sort(np.asarray(tz_hist, np.int64))[::-1][:10].sum()
    return {"realism": {"top10_tz_share": float(top / n), "virtual_share": v["virtual_arrivals"] / n},
            "rng_expected": {"5B.arrival_time_jitter": {"blocks": v["arrivals"], "draws": v["arrivals"]},
                             "5B.arrival_site_pick": {"blocks": v["site_pick_blocks"],
                                                      "draws": 2 * v["site_pick_blocks"]},
                             "5B.arrival_edge_pick": {"blocks": v["virtual_arrivals"], "draws": v["virtual_arrivals"]}}}


def count_realism(mu: np.ndarray, n: np.ndarray, f: np.ndarray, pol: dict) -> dict:
    """S2/S3 corridors: LGCP mean factor, non-zero fraction, heavy tail, NB2 dispersion."""
    vp = pol["validation_policy_5B"]
    nz = n[n > 0]
    sel = mu >= vp["dispersion_nb2"]["mu_min"]
    resid = (n[sel] - mu[sel]) / np.sqrt(mu[sel]) if sel.any() else np.zeros(0)
    return {"lgcp_mean_factor": float(f.mean()) if f.size else 1.0,
            "nonzero_fraction": float(np.mean(n > 0)) if n.size else 0.0,
            "p99_p50": float(np.percentile(nz, 99) / max(np.percentile(nz, 50), 1)) if nz.size else 0.0,
            "pearson_resid_std": float(resid.std()) if resid.size > 1 else float("nan"),
            "dispersion_rows": int(sel.sum())}
