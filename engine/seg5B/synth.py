"""Synthetic 5B inputs shaped like the real hand-offs (2B.S1/S2, 3B, 5A), for tests and benchmarks.

Not a model of anything: sizes and mixes are assumptions chosen to exercise every path (zones
without sites -> fallback, HYBRID and VIRTUAL_ONLY merchants, half-hour and 45-minute offsets,
southern-hemisphere DST, US and EU DST changes inside March 2026).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from engine.core import alias
from engine.core.civil_time import CivilTimeCache, flatten_cache
from engine.core.tzcache import build_tz_cache

# tzid -> ISO country (an assumption for the synthetic sites)
TZ_ISO = {"America/New_York": "US", "America/Chicago": "US", "America/Los_Angeles": "US", "America/St_Johns": "CA",
          "America/Sao_Paulo": "BR", "Europe/London": "GB", "Europe/Paris": "FR", "Europe/Berlin": "DE",
          "Africa/Johannesburg": "ZA", "Asia/Kolkata": "IN", "Asia/Kathmandu": "NP", "Asia/Tokyo": "JP",
          "Australia/Sydney": "AU", "Australia/Lord_Howe": "AU", "Pacific/Auckland": "NZ", "UTC": "GB"}
TZS = tuple(sorted(TZ_ISO))
CLASSES = ("consumer_daytime", "office_hours", "online_24h", "online_bursty", "low_volume_tail", "evening_weekend")


@dataclass
class World:
    lam: pl.DataFrame
    profile: pl.DataFrame
    classification: pl.DataFrame
    settlement: pl.DataFrame
    site_weights: pl.DataFrame
    alias_table: pl.DataFrame
    edges: pl.DataFrame
    cache: CivilTimeCache
    scenario: dict


def _quantise(w: np.ndarray, off: np.ndarray, bits: int = 24) -> np.ndarray:
    """Integer masses Σ = 2^bits per CSR group (floors, remainder to the group's largest weight)."""
    m = np.zeros(len(w), np.int64)
    for a, b in zip(off[:-1], off[1:]):              # setup only: one pass per merchant
        x = w[a:b] / w[a:b].sum() * (1 << bits)
        q = np.floor(x).astype(np.int64)
        q[np.argmax(x)] += (1 << bits) - q.sum()
        m[a:b] = q
    return m


def make_world(n_merchants: int, days: int, arrivals_target: float, seed: int = 7,
               start: str = "2026-03-02T00:00:00Z", cache_span=("2026-03-01", "2026-04-05")) -> World:
    rs = np.random.default_rng(seed)
    mids = np.unique(rs.integers(1, 2**63, int(n_merchants * 1.01) + 10, dtype=np.int64))[:n_merchants].astype(np.uint64)
    n_merchants = len(mids)
    mode = rs.choice(["NON_VIRTUAL", "HYBRID", "VIRTUAL_ONLY"], n_merchants, p=[0.86, 0.09, 0.05])
    chan = rs.choice(["card_present", "card_not_present", "mixed"], n_merchants, p=[0.6, 0.3, 0.1])
    cls = rs.choice(CLASSES, n_merchants)
    # zones per merchant; sites in all but (sometimes) the last zone, so fallback happens
    m_rows, z_rows = [], []
    site = {"merchant_id": [], "legal_country_iso": [], "site_order": [], "tz_group_id": [], "w": []}
    for i, m in enumerate(mids.tolist()):
        nz = int(rs.integers(1, 4))
        zs = sorted(rs.choice(TZS, nz, replace=False).tolist(), key=str.encode)
        for z in zs:
            m_rows.append(m)
            z_rows.append(z)
        site_zones = zs if (nz == 1 or rs.random() < 0.7) else zs[:-1]
        if mode[i] == "VIRTUAL_ONLY" and rs.random() < 0.5:
            site_zones = []
        order = {}
        for z in site_zones:
            iso = TZ_ISO[z]
            for _ in range(int(rs.integers(1, 6))):
                order[iso] = order.get(iso, 0) + 1
                site["merchant_id"].append(m)
                site["legal_country_iso"].append(iso)
                site["site_order"].append(order[iso])
                site["tz_group_id"].append(z)
                site["w"].append(float(rs.pareto(1.5) + 0.1))
    sw = pl.DataFrame(site).with_columns(pl.col("merchant_id").cast(pl.UInt64), pl.col("site_order").cast(pl.Int32))
    sw = sw.sort("merchant_id", "legal_country_iso", "site_order")
    sm = sw["merchant_id"].to_numpy()
    off = np.concatenate([[0], np.flatnonzero(sm[1:] != sm[:-1]) + 1, [len(sm)]])
    sw = sw.with_columns(pl.Series("m_q", _quantise(sw["w"].to_numpy(), off)).cast(pl.UInt32)).drop("w")
    from engine.seg2B.logic import alias_slices
    at = alias_slices(sw, 24)
    # edges for virtual merchants, slot = edge_seq_index, alias on 2^24 (3B.S3 law)
    vm = mids[mode != "NON_VIRTUAL"]
    ne = rs.integers(2, 9, len(vm))
    e_m = np.repeat(vm, ne)
    e_off = np.concatenate([[0], np.cumsum(ne)]).astype(np.int64)
    e_w = rs.pareto(1.2, len(e_m)) + 0.05
    prob, al = alias.build_alias(e_off, _quantise(e_w, e_off), 24)
    edges = pl.DataFrame({"merchant_id": e_m, "edge_id": rs.integers(1, 2**63, len(e_m), dtype=np.int64).astype(np.uint64),
                          "edge_seq_index": (np.arange(len(e_m)) - np.repeat(e_off[:-1], ne)).astype(np.int32),
                          "tzid_operational": rs.choice(TZS, len(e_m)), "prob_q": prob.astype(np.uint32),
                          "alias": al})
    settlement = pl.DataFrame({"merchant_id": vm, "tzid_settlement": rs.choice(TZS, len(vm))})
    classification = pl.DataFrame({"merchant_id": mids, "virtual_mode": mode,
                                   "is_virtual": mode != "NON_VIRTUAL"})
    # λ per (merchant, zone, channel, bucket): heavy-tailed scale x a UTC-hour wave (an assumption)
    H = days * 24
    dom = pl.DataFrame({"merchant_id": np.array(m_rows, np.uint64), "zone_representation": z_rows})
    mi = np.searchsorted(mids, dom["merchant_id"].to_numpy())
    dom = dom.with_columns(pl.Series("channel_group", chan[mi]))
    scale = rs.pareto(2.5, dom.height) + 0.2
    wave = 1.0 + 0.8 * np.sin(np.arange(H) * 2 * np.pi / 24.0)
    lam = scale[:, None] * wave[None, :]
    lam *= arrivals_target / lam.sum()
    lam[rs.random(lam.shape) < 0.05] = 0.0                      # some exact zeros (no RNG event)
    lamdf = pl.DataFrame({
        "merchant_id": np.repeat(dom["merchant_id"].to_numpy(), H),
        "zone_representation": np.repeat(dom["zone_representation"].to_numpy(), H),
        "channel_group": np.repeat(dom["channel_group"].to_numpy(), H),
        "utc_horizon_bucket_index": np.tile(np.arange(H, dtype=np.int32), dom.height),
        "lambda_utc_scenario": lam.reshape(-1)}).with_columns(pl.col("merchant_id").cast(pl.UInt64))
    profile = dom.with_columns(pl.Series("demand_class", cls[mi]))
    table, _ = build_tz_cache(TZS, cache_span[0], cache_span[1])
    import datetime as dt
    s = dt.datetime.fromisoformat(start.replace("Z", "+00:00"))
    scenario = {"scenario_id": "baseline_v1", "horizon_start_utc": s, "horizon_end_utc": s + dt.timedelta(days=days),
                "bucket_duration_seconds": 3600, "is_baseline": True, "is_stress": False}
    return World(lamdf, profile, classification, settlement, sw, at, edges, flatten_cache(table), scenario)
