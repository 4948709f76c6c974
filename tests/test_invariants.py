"""Property tests (hypothesis) for the integerisation laws and the 1B pair kernels."""
from __future__ import annotations

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.core.integerise import integer_largest_remainder, largest_remainder
from engine.seg1B import kernels

weights = st.lists(st.integers(0, 10**6), min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(weights, st.integers(0, 500))
def test_integer_split_is_exact_and_within_one(masses, total):
    df = pl.DataFrame({"g": [1] * len(masses), "t": list(range(len(masses))), "m": masses})
    out = integer_largest_remainder(df, ["g"], "m", total, "t")
    assert out["count"].sum() == total
    m = np.array(masses, dtype=np.float64)
    share = m / m.sum() if m.sum() else np.full(len(m), 1 / len(m))
    assert np.all(np.abs(out["count"].to_numpy() - total * share) < 1)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=1, max_size=12), st.integers(1, 1000))
def test_real_split_conserves(raw, n):
    p = np.array(raw) + 1e-9
    df = pl.DataFrame({"g": [0] * len(p), "iso": [f"{i:02d}" for i in range(len(p))], "n": [n] * len(p),
                       "p": p / p.sum()})
    out = largest_remainder(df, ["g"], "n", "p", [("iso", False)])
    assert out["count"].sum() == n and (out["count"] >= 0).all()
    assert sorted(out["residual_rank"].to_list()) == list(range(1, len(p) + 1))


@st.composite
def country_and_pairs(draw):
    n_tiles = draw(st.integers(1, 60))
    raw = draw(st.lists(st.integers(0, 1000), min_size=n_tiles, max_size=n_tiles))
    if sum(raw) == 0:
        raw[0] = 1
    k = 10**6
    w = np.floor(np.array(raw) * k / sum(raw)).astype(np.int64)
    w[int(np.argmax(w))] += k - w.sum()
    ns = draw(st.lists(st.integers(1, 300), min_size=1, max_size=20))
    return w, np.array(ns, np.int64)


@settings(max_examples=40, deadline=None)
@given(country_and_pairs(), st.booleans(), st.integers(0, 2**63))
def test_allocation_conserves_and_stays_within_floor_plus_one(case, sampled, seed):
    w, ns = case
    rng = np.random.default_rng(seed % 2**32)
    streams = rng.integers(0, 2**63, size=(len(ns), 3), dtype=np.uint64)
    rp, rt, rc, end = kernels.allocate_pairs(streams, np.zeros(len(ns), np.int64), ns,
                                             np.array([0, len(w)], np.int64), w, 10**6, sampled)
    for p, n in enumerate(ns):
        counts = np.zeros(len(w), np.int64)
        counts[rt[rp == p]] = rc[rp == p]
        assert counts.sum() == n
        floor = (w * n) // 10**6
        assert np.all((counts == floor) | (counts == floor + 1))
        s = n - floor.sum()
        assert end[p, 3] == (s if sampled else 0)          # one draw per remainder unit


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 30), min_size=1, max_size=15), st.integers(0, 2**32 - 1))
def test_site_assignment_keeps_tile_quotas(sizes, seed):
    rng = np.random.default_rng(seed)
    off = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    tiles = np.concatenate([np.sort(rng.integers(0, 5, size=n)) for n in sizes]).astype(np.uint64)
    streams = rng.integers(0, 2**63, size=(len(sizes), 3), dtype=np.uint64)
    out, end = kernels.assign_sites(streams, off, tiles)
    for p in range(len(sizes)):
        a, b = off[p], off[p + 1]
        assert sorted(out[a:b].tolist()) == sorted(tiles[a:b].tolist())
    assert end[:, 3].sum() == off[-1]                          # one uniform per site


@settings(max_examples=30, deadline=None)
@given(st.floats(-60, 60), st.floats(-170, 170), st.integers(0, 2**32 - 1))
def test_jitter_stays_in_rectangle_and_polygon(lat, lon, seed):
    import shapely

    from engine.seg1B.common import rings
    poly = shapely.Polygon([(lon, lat), (lon + 0.2, lat), (lon + 0.1, lat + 0.2)])   # a triangle
    geo = rings([shapely.MultiPolygon([poly])])
    rng = np.random.default_rng(seed)
    n = 50
    streams = rng.integers(0, 2**63, size=(n, 3), dtype=np.uint64)
    rect = np.tile([lon, lon + 0.2, lat, lat + 0.2], (n, 1))
    anchor = np.tile([lon + 0.1, lat + 0.05], (n, 1))
    x, y, att, fb, end = kernels.jitter_sites(streams, rect, np.zeros(n, np.int64), np.zeros(n, bool), anchor, 64, *geo)
    assert np.all((x >= lon) & (x <= lon + 0.2) & (y >= lat) & (y <= lat + 0.2))
    assert shapely.intersects_xy(poly.buffer(1e-9), x, y).all()
    assert np.array_equal(end[:, 4], att) and np.array_equal(end[:, 3], 2 * att)
