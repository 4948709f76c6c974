"""The tz cache and the civil-time law against stdlib zoneinfo (the pinned tzdata wheel).

Independent reference: offsets from stdlib zoneinfo fed the same wheel TZif bytes (its own parser
and POSIX-footer code; `ZoneInfo(key)` would read the system tzdb first, which may be another
release), transitions found by the chapter's daily scan + bisection.
"""
from __future__ import annotations

import datetime as dt
import functools
import struct

import numpy as np
import pytest

from engine.core import civil_time as ct
from engine.core import tzcache
from engine.core.errors import EngineFailure
from engine.core.rng import uniforms_at

E_AWARE = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
E_NAIVE = dt.datetime(1970, 1, 1)
US = dt.timedelta(microseconds=1)
DAY = 86400


@functools.cache
def zi_(tz: str):
    return tzcache.wheel_zoneinfo(tz)


def zone1970() -> list[str]:
    root = tzcache._zoneinfo_root()
    rows = [ln.split("\t")[2] for ln in root.joinpath("zone1970.tab").read_text().splitlines()
            if ln and not ln.startswith("#")]
    return sorted(set(rows), key=str.encode)


TZIDS = zone1970()
WINDOWS = {  # cache horizon, tested window (the cache has a year of margin where it can)
    "modern": (("2024-01-01", "2029-12-31"), ("2025-01-01", "2028-12-31")),
    "historic": (("1990-01-01", "2026-12-31"), ("1990-01-02", "2026-12-30")),
}


def _s(d: str, end=False) -> int:
    return tzcache.to_unix_seconds(d, end=end)


def ref_offset_s(zi, s: int) -> int:
    return int((E_AWARE + dt.timedelta(seconds=s)).astimezone(zi).utcoffset().total_seconds())


def ref_utc_to_local(zi, us: int) -> int:
    loc = (E_AWARE + dt.timedelta(microseconds=us)).astimezone(zi).replace(tzinfo=None)
    return (loc - E_NAIVE) // US


def ref_local_to_utc(zi, us: int, fold: int) -> int:
    loc = (E_NAIVE + dt.timedelta(microseconds=us)).replace(tzinfo=zi, fold=fold)
    return (loc - E_AWARE) // US


def ref_transitions(zi, start: int, end: int) -> tuple[int, list[tuple[int, int]]]:
    """(offset at start, [(first second of new offset, new offset s)]) on (start, end]."""
    grid = list(range(start, end, DAY)) + [end]
    offs = [ref_offset_s(zi, s) for s in grid]
    out = []
    for a, b, oa, ob in zip(grid, grid[1:], offs, offs[1:]):
        if oa != ob:
            lo, hi = a, b                       # off(lo) = oa, off(hi) = ob
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if ref_offset_s(zi, mid) == oa:
                    lo = mid
                else:
                    hi = mid
            out.append((hi, ob))
    return offs[0], out


@pytest.fixture(scope="module", params=list(WINDOWS))
def world(request):
    (h0, h1), (w0, w1) = WINDOWS[request.param]
    table, manifest = tzcache.build_tz_cache(TZIDS, h0, h1)
    cache = ct.flatten_cache(table)
    return request.param, table, manifest, cache, (_s(w0), _s(w1, end=True))


@pytest.fixture(scope="module")
def refs(world):
    name, table, manifest, cache, (w0, w1) = world
    start, end = manifest["horizon_start_unix_s"], manifest["horizon_end_unix_s"]
    return {tz: ref_transitions(zi_(tz), start, end) for tz in TZIDS}


# --------------------------------------------------------------------------- the cache itself
def test_cache_equals_zoneinfo_transitions(world, refs):
    """Every tz: sentinel = offset at the horizon start; transitions = the daily-scan reference."""
    name, table, manifest, cache, _ = world
    assert cache.tzids == tuple(TZIDS) and manifest["n_tzids"] == len(TZIDS)
    for i, tz in enumerate(TZIDS):
        lo, hi = cache.tz_start[i], cache.tz_start[i + 1]
        off0, trans = refs[tz]
        assert cache.trans_us[lo] == np.iinfo(np.int64).min
        assert cache.offset_us[lo] == off0 * 10**6, tz
        got = [(int(t) // 10**6, int(o) // 10**6) for t, o in zip(cache.trans_us[lo + 1:hi], cache.offset_us[lo + 1:hi])]
        assert got == trans, tz


def test_slim_tzif_footer_is_used():
    """The wheel's New_York stops its explicit list early; DST after that comes from the footer."""
    raw = tzcache._zoneinfo_root().joinpath("America", "New_York").read_bytes()
    tzif = tzcache.parse_tzif(raw)
    assert tzif.trans_utc[-1] < _s("2008-01-01") and tzif.footer == "EST5EDT,M3.2.0,M11.1.0"
    table, _ = tzcache.build_tz_cache(["America/New_York"], "2027-01-01", "2028-12-31")
    t = table.column("transition_utc").to_numpy()
    assert list(t[1:]) == [_s("2027-03-14T07:00:00Z"), _s("2027-11-07T06:00:00Z"),
                           _s("2028-03-12T07:00:00Z"), _s("2028-11-05T06:00:00Z")]
    assert table.column("offset_min").to_pylist() == [-300, -240, -300, -240, -300]


def test_cache_bytes_and_digest_are_deterministic():
    a, ma = tzcache.build_tz_cache(["Europe/London", "Asia/Kathmandu"], "2025-01-01", "2026-12-31")
    b, mb = tzcache.build_tz_cache(["Asia/Kathmandu", "Europe/London", "Asia/Kathmandu"], "2025-01-01", "2026-12-31")
    assert a.equals(b) and ma == mb
    raw = tzcache.canonical_bytes(a)
    n = raw[0]
    assert raw[1:1 + n] == b"Asia/Kathmandu"
    t, o = struct.unpack_from("<qh", raw, 1 + n)
    assert (t, o) == (-(1 << 63), 345)
    assert ma["tz_index_digest"] == tzcache.tz_index_digest(a)
    assert ma["n_transitions"] == 4 and a.num_rows == 6


def test_posix_rule_days():
    """Jn skips Feb 29, n counts it, Mm.5.d is the last such weekday; times beyond 24 h."""
    p = tzcache.parse_posix_tz("AAA3BBB,J60/2,300/-1")
    assert (p.std_off, p.dst_off) == (-3 * 3600, -2 * 3600)
    days = lambda r, y: dt.date(1970, 1, 1) + dt.timedelta(days=tzcache._rule_day(r, y))
    assert days(p.start, 2028) == dt.date(2028, 3, 1) and days(p.end, 2028) == dt.date(2028, 10, 27)
    assert days(p.start, 2027) == dt.date(2027, 3, 1) and days(p.end, 2027) == dt.date(2027, 10, 28)
    g = tzcache.parse_posix_tz("EET-2EEST,M3.4.4/50,M10.4.4/50")        # Asia/Gaza
    assert g.start[4] == 50 * 3600 and days(g.start, 2026) == dt.date(2026, 3, 26)
    d = tzcache.parse_posix_tz("IST-1GMT0,M10.5.0,M3.5.0/1")             # Dublin: negative DST
    assert (d.std_off, d.dst_off) == (3600, 0)
    assert days(d.start, 2026) == dt.date(2026, 10, 25)
    k = tzcache.parse_posix_tz("<+0545>-5:45")
    assert k.std_off == 20700 and k.dst_abbr is None
    with pytest.raises(ValueError):
        tzcache.parse_posix_tz("nonsense")


# --------------------------------------------------------------------------- utc -> local
def _random_instants(cache, w0, w1, n, key):
    u = uniforms_at(np.uint64(key), np.uint64(0), np.uint64(0), 2 * n)
    tz = np.minimum((u[:n] * len(cache.tzids)).astype(np.int32), len(cache.tzids) - 1)
    ts = (w0 * 10**6 + (u[n:] * (w1 - w0) * 10**6)).astype(np.int64)
    return ts, tz


def test_utc_to_local_random_instants(world):
    name, table, manifest, cache, (w0, w1) = world
    ts, tz = _random_instants(cache, w0, w1, 100_000, 11)
    got = ct.utc_to_local(ts, tz, cache)
    zis = [zi_(z) for z in cache.tzids]
    want = np.array([ref_utc_to_local(zis[k], int(s)) for s, k in zip(ts.tolist(), tz.tolist())])
    np.testing.assert_array_equal(got, want)
    # single-tz call gives the same as the per-row call
    i = cache.tzids.index("Australia/Lord_Howe")
    np.testing.assert_array_equal(ct.utc_to_local(ts, i, cache), ct.utc_to_local(ts, np.full(len(ts), i), cache))


def _probes(refs, w0, w1):
    """UTC probes t-1s, t-1µs, t, t+1s and local probes around both wall edges of each transition."""
    u_ts, u_tz, l_ts, l_tz = [], [], [], []
    for i, tz in enumerate(TZIDS):
        prev, trans = refs[tz]
        for t, o in trans:
            if w0 <= t <= w1:
                for d in (-10**6, -1, 0, 10**6):
                    u_ts.append(t * 10**6 + d)
                    u_tz.append(i)
                for edge in (t + prev, t + o):
                    for d in (-10**6, 0, 10**6):
                        l_ts.append(edge * 10**6 + d)
                        l_tz.append(i)
                l_ts.append((t + (prev + o) // 2) * 10**6)
                l_tz.append(i)
            prev = o
    return (np.array(u_ts, np.int64), np.array(u_tz, np.int32),
            np.array(l_ts, np.int64), np.array(l_tz, np.int32))


def test_utc_to_local_both_sides_of_every_transition(world, refs):
    name, table, manifest, cache, (w0, w1) = world
    ts, tz, _, _ = _probes(refs, w0, w1)
    assert len(ts) > 4 * 300                                  # every DST zone contributes
    zis = [zi_(z) for z in cache.tzids]
    want = np.array([ref_utc_to_local(zis[k], int(s)) for s, k in zip(ts.tolist(), tz.tolist())])
    np.testing.assert_array_equal(ct.utc_to_local(ts, tz, cache), want)
    off = ct.utc_offset_minutes(ts, tz, cache)
    np.testing.assert_array_equal(off * 60 * 10**6, want - ts)


# --------------------------------------------------------------------------- local -> utc
def _check_local(cache, lts, ltz):
    zis = [zi_(z) for z in cache.tzids]
    f0 = np.array([ref_local_to_utc(zis[k], int(s), 0) for s, k in zip(lts.tolist(), ltz.tolist())])
    f1 = np.array([ref_local_to_utc(zis[k], int(s), 1) for s, k in zip(lts.tolist(), ltz.tolist())])
    back0 = np.array([ref_utc_to_local(zis[k], int(s)) for s, k in zip(f0.tolist(), ltz.tolist())])
    gap = back0 != lts                        # the local time never occurs
    fold = (f0 != f1) & ~gap                  # it occurs twice
    early = ct.local_to_utc(lts, ltz, cache, ct.FOLD_EARLIEST)
    late = ct.local_to_utc(lts, ltz, cache, ct.FOLD_LATEST)
    np.testing.assert_array_equal(early, f0)                     # gap forward, fold first
    np.testing.assert_array_equal(late, np.where(gap, f0, f1))   # gap forward, fold second
    # gap: forward by the gap size; elsewhere: round trip
    loc = ct.utc_to_local(early, ltz, cache)
    np.testing.assert_array_equal(loc[~gap], lts[~gap])
    np.testing.assert_array_equal(ct.utc_to_local(late, ltz, cache)[~gap], lts[~gap])
    assert np.all(loc[gap] > lts[gap])
    return int(gap.sum()), int(fold.sum())


def test_local_to_utc_at_gaps_and_folds(world, refs):
    name, table, manifest, cache, (w0, w1) = world
    _, _, lts, ltz = _probes(refs, w0, w1)
    n_gap, n_fold = _check_local(cache, lts, ltz)
    assert n_gap > 300 and n_fold > 300


def test_local_to_utc_random_and_round_trip(world):
    name, table, manifest, cache, (w0, w1) = world
    ts, tz = _random_instants(cache, w0, w1, 100_000, 12)
    _check_local(cache, ts, tz)               # random wall-clock readings
    loc = ct.utc_to_local(ts, tz, cache)      # random instants: local -> utc recovers them
    e = ct.local_to_utc(loc, tz, cache, ct.FOLD_EARLIEST)
    l = ct.local_to_utc(loc, tz, cache, ct.FOLD_LATEST)
    assert np.all((e == ts) | (l == ts)) and np.all(e <= l)


# --------------------------------------------------------------------------- named zones, known answers
@pytest.fixture(scope="module")
def named():
    tzs = ["Africa/Casablanca", "America/New_York", "America/Santiago", "Asia/Kathmandu",
           "Australia/Lord_Howe", "Europe/London", "Pacific/Apia"]
    table, manifest = tzcache.build_tz_cache(tzs, "2010-01-01", "2028-12-31")
    return ct.flatten_cache(table)


def _l(s: str) -> int:
    return int(np.datetime64(s, "us").astype(np.int64))


@pytest.mark.parametrize("tz, local, rule, utc", [
    ("America/New_York", "2026-03-08T02:30", 0, "2026-03-08T07:30"),    # gap 1 h: -> 03:30 EDT
    ("America/New_York", "2026-03-08T02:30", 1, "2026-03-08T07:30"),
    ("America/New_York", "2026-11-01T01:30", 0, "2026-11-01T05:30"),    # fold: EDT first
    ("America/New_York", "2026-11-01T01:30", 1, "2026-11-01T06:30"),    # EST second
    ("Europe/London", "2027-03-28T01:15", 0, "2027-03-28T01:15"),       # gap -> 02:15 BST
    ("Europe/London", "2027-10-31T01:15", 0, "2027-10-31T00:15"),
    ("Europe/London", "2027-10-31T01:15", 1, "2027-10-31T01:15"),
    ("Australia/Lord_Howe", "2026-10-04T02:15", 0, "2026-10-03T15:45"), # 30-min gap -> 02:45 +11
    ("Australia/Lord_Howe", "2026-04-05T01:45", 0, "2026-04-04T14:45"), # 30-min fold, +11 first
    ("Australia/Lord_Howe", "2026-04-05T01:45", 1, "2026-04-04T15:15"), # +10:30 second
    ("Asia/Kathmandu", "2027-06-01T12:00", 0, "2027-06-01T06:15"),      # +05:45
    ("Pacific/Apia", "2011-12-30T12:00", 0, "2011-12-30T22:00"),        # the skipped day: +24 h
    ("America/Santiago", "2026-09-06T00:30", 0, "2026-09-06T04:30"),    # gap at 24:00 Sat
    ("America/Santiago", "2026-04-04T23:30", 0, "2026-04-05T02:30"),    # fold: -03 first
    ("America/Santiago", "2026-04-04T23:30", 1, "2026-04-05T03:30"),
])
def test_known_answers(named, tz, local, rule, utc):
    i = named.tzids.index(tz)
    got = ct.local_to_utc(np.array([_l(local)]), i, named, rule)[0]
    assert got == _l(utc)
    zi = zi_(tz)
    assert ct.utc_to_local(np.array([got]), i, named)[0] == ref_utc_to_local(zi, int(got))


def test_casablanca_ramadan_and_apia_against_zoneinfo(named):
    """Casablanca's yearly Ramadan switch and Apia's dateline jump, minute by minute near each change."""
    for tz in ("Africa/Casablanca", "Pacific/Apia"):
        i = named.tzids.index(tz)
        lo, hi = named.tz_start[i], named.tz_start[i + 1]
        t = named.trans_us[lo + 1:hi]
        assert len(t) > (20 if tz == "Africa/Casablanca" else 2)
        grid = (t[:, None] + np.arange(-180, 181)[None, :] * 60 * 10**6).ravel()
        zi = zi_(tz)
        want = np.array([ref_utc_to_local(zi, int(s)) for s in grid.tolist()])
        np.testing.assert_array_equal(ct.utc_to_local(grid, i, named), want)
        _check_local(named, grid, np.full(len(grid), i, np.int32))


def test_scalar_kernels_inside_numba(named):
    from numba import njit

    @njit
    def kern(ts, tz, c0, c1, c2, c3):
        out = np.empty((2, ts.shape[0]), np.int64)
        for k in range(ts.shape[0]):
            loc = ct.utc_to_local_scalar(ts[k], tz, c0, c1, c3)
            for f in range(2):
                out[f, k] = ct.local_to_utc_scalar(loc, tz, f, c0, c2[0], c2[1], c3)
        return out

    i = named.tzids.index("Europe/London")
    ts = np.arange(_l("2026-01-01T00:00"), _l("2027-01-01T00:00"), 60_000_000 + 7, dtype=np.int64)
    walls = (named.wall_early_us, named.wall_late_us)
    e, l = kern(ts, i, named.tz_start, named.trans_us, walls, named.offset_us)
    np.testing.assert_array_equal(e, ct.local_to_utc(ct.utc_to_local(ts, i, named), i, named, 0))
    assert np.all((e == ts) | (l == ts))
    assert np.sum(e != ts) == np.sum(l != ts) == 60        # the 60 fold minutes of October


# --------------------------------------------------------------------------- coverage and bad input
def test_coverage_short_and_missing():
    table, man = tzcache.build_tz_cache(["Europe/London", "America/New_York"], "2025-01-01", "2026-12-31")
    kw = dict(short_code="2A.S3.TZ_CACHE_HORIZON_SHORT", missing_code="2A.S3.TZID_NOT_IN_CACHE")
    tzcache.check_coverage(man, ["Europe/London"], "2025-01-01", "2026-12-31", table=table, **kw)
    with pytest.raises(EngineFailure) as e:
        tzcache.check_coverage(man, ["Europe/London"], "2025-06-01", "2027-01-01", **kw)
    assert e.value.code == "2A.S3.TZ_CACHE_HORIZON_SHORT"
    with pytest.raises(EngineFailure) as e:
        tzcache.check_coverage(man, ["Europe/London"], "2024-12-31", "2026-01-01", **kw)
    assert e.value.code == "2A.S3.TZ_CACHE_HORIZON_SHORT"
    with pytest.raises(EngineFailure) as e:
        tzcache.check_coverage(man, ["Europe/London", "Asia/Tokyo"], "2025-06-01", "2026-01-01", **kw)
    assert e.value.code == "2A.S3.TZID_NOT_IN_CACHE" and "Asia/Tokyo" in e.value.message + str(e.value.context)
    bad = dict(man, coverage=dict(man["coverage"], **{"Europe/London": dict(man["coverage"]["Europe/London"],
                                                                            end_utc=_s("2026-01-01"))}))
    with pytest.raises(EngineFailure) as e:                  # one tzid's own coverage ends early
        tzcache.check_coverage(bad, ["Europe/London"], "2025-06-01", "2026-06-01", **kw)
    assert e.value.code == "2A.S3.TZ_CACHE_HORIZON_SHORT"


def test_builder_failures():
    with pytest.raises(EngineFailure) as e:
        tzcache.build_tz_cache(["Mars/Olympus_Mons"], "2025-01-01", "2026-01-01")
    assert e.value.code == "2A.S3.UNKNOWN_TZID"
    with pytest.raises(EngineFailure) as e:
        tzcache.build_tz_cache(["../../etc/passwd"], "2025-01-01", "2026-01-01")
    assert e.value.code == "2A.S3.UNKNOWN_TZID"
    with pytest.raises(EngineFailure) as e:
        tzcache.build_tz_cache(["Europe/Paris"], "2025-01-01", "2026-01-01", expected_version="1999a")
    assert e.value.code == "2A.S3.TZDATA_VERSION_MISMATCH"
    with pytest.raises(EngineFailure) as e:                  # LMT -4:56:02 is not whole minutes
        tzcache.build_tz_cache(["America/New_York"], "1880-01-01", "1890-01-01")
    assert e.value.code == "2A.S3.OFFSET_OUT_OF_BOUNDS"
    with pytest.raises(EngineFailure) as e:
        tzcache.build_tz_cache([], "2025-01-01", "2026-01-01")
    assert e.value.code == "2A.S3.INDEX_EMPTY"


def test_tz_index_lookup(named):
    assert list(named.tz_index(["Pacific/Apia", "Africa/Casablanca"])) == [6, 0]
    with pytest.raises(EngineFailure) as e:
        named.tz_index(["Europe/Paris"], code="5B.S4.TZID_NOT_IN_CACHE")
    assert e.value.code == "5B.S4.TZID_NOT_IN_CACHE"
    with pytest.raises(IndexError):
        ct.utc_to_local(np.zeros(2, np.int64), np.array([0, 7]), named)
