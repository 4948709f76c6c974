"""5A scenario calendar, generated in code (chapter 5A §3.4a; run in S0, sealed by hash).

Event families: PAYDAY and HOLIDAY are local-date windows (time_basis "local": start_us/end_us are wall-clock
µs since 1970 applied in every zone of the country, so a holiday runs local midnight to local midnight);
CAMPAIGN, OUTAGE and STRESS are UTC windows (start_us/end_us UTC µs). Holidays are the real public holidays
of the `holidays` package for each country of the domain (national calendar, no subdivisions), at most
`max_per_country_month` per month; a country the package does not cover gets synthetic days.
Every choice is `u_det("5A.calendar|<sid>|<stage>", keys...)`.
"""
from __future__ import annotations

import calendar as pycal
import datetime as dt
import hashlib
import json
import math

import polars as pl

from engine.core.errors import EngineFailure

from .common import EVENT_TYPES, u_det
from .horizon import DAY_US, HOUR_US, Horizon

CALENDAR_SCHEMA = {
    "event_id": pl.String, "event_type": pl.String, "time_basis": pl.String, "start_us": pl.Int64,
    "end_us": pl.Int64, "shape_kind": pl.String, "amplitude": pl.Float64, "ramp_in_buckets": pl.Int32,
    "ramp_out_buckets": pl.Int32, "scope_global": pl.Boolean, "country_iso": pl.String, "tzid": pl.String,
    "demand_class": pl.String, "merchant_id": pl.UInt64, "label": pl.String,
}
_EPOCH = dt.date(1970, 1, 1)


def holidays_version() -> str:
    """The `holidays` package version, to be sealed with the calendar (and folded into the fingerprint)."""
    import holidays
    return holidays.__version__


def _date_us(d: dt.date) -> int:
    return (d - _EPOCH).days * DAY_US


def _months(d0: dt.date, d1: dt.date) -> list[tuple[int, int]]:
    out, y, m = [], d0.year, d0.month
    while (y, m) <= (d1.year, d1.month):
        out.append((y, m))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def _local_dates(h: Horizon) -> tuple[dt.date, dt.date]:
    """Every local date any zone (offsets -12..+14 h) can see inside the horizon."""
    d0 = _EPOCH + dt.timedelta(microseconds=h.start_us - 12 * HOUR_US)
    d1 = _EPOCH + dt.timedelta(microseconds=h.end_us + 14 * HOUR_US)
    return d0, d1


def _payday(c: str, y: int, m: int, days: list[str], sid: str) -> dt.date:
    u = u_det(f"5A.calendar|{sid}|payday_rule", c, f"{y:04d}-{m:02d}")
    rule = days[int(u * len(days))]
    d = dt.date(y, m, pycal.monthrange(y, m)[1] if rule == "last" else int(rule))
    wd = d.isoweekday()
    return d - dt.timedelta(days=wd - 5) if wd >= 6 else d     # Sat/Sun -> the Friday before


def _public_holidays(c: str, years: list[int]) -> dict | None:
    import holidays
    try:
        # English names whatever the process locale (holidays translates by LANG; unset: the native names),
        # so a pod without a locale builds the same bytes; en_US equals the C.UTF-8 default for every country
        return dict(holidays.country_holidays(c, years=years, language="en_US"))
    except (NotImplementedError, KeyError, AttributeError):
        return None


def generate_calendar(scenario: dict, horizon: Horizon, countries: list[str], tzids: list[str], gen: dict) -> pl.DataFrame:
    """Events of one scenario, sorted by (start_us, event_type, event_id). Validate with `validate_calendar`."""
    sid = scenario["scenario_id"]
    rows: list[dict] = []

    def add(et, basis, s, e, kind, amp, rin=0, rout=0, country=None, tz=None, cls=None, merchant=None, label=""):
        rows.append({"event_type": et, "time_basis": basis, "start_us": int(s), "end_us": int(e), "shape_kind": kind,
                     "amplitude": float(amp), "ramp_in_buckets": int(rin), "ramp_out_buckets": int(rout),
                     "scope_global": country is None and tz is None and cls is None and merchant is None,
                     "country_iso": country, "tzid": tz, "demand_class": cls, "merchant_id": merchant, "label": label})

    d0, d1 = _local_dates(horizon)
    months = _months(d0, d1)
    years = sorted({y for y, _ in months})
    pay, hol = gen["payday"], gen["holiday"]
    for c in sorted(countries):
        paydays = {}
        for y, m in months:
            pd_ = _payday(c, y, m, pay["days"], sid)
            paydays[(y, m)] = pd_
            if d0 <= pd_ <= d1:
                s = _date_us(pd_)
                for cls, a in sorted(pay["class_amplitudes"].items()):
                    add("PAYDAY", "local", s, s + pay["window_hours"] * HOUR_US, "ramp", a, pay["ramp_in_buckets"],
                        pay["ramp_out_buckets"], country=c, cls=cls, label=f"payday {pd_.isoformat()}")
        ph = _public_holidays(c, years)
        for y, m in months:
            if ph is not None:
                days = sorted(d for d in ph if d.year == y and d.month == m)[:hol["max_per_country_month"]]
                names = [ph[d] for d in days]
            else:
                days = _synthetic_holidays(c, y, m, paydays[(y, m)], hol, sid)
                names = ["synthetic holiday"] * len(days)
            for d, name in zip(days, names):
                if d0 <= d <= d1:
                    s = _date_us(d)
                    for cls, a in sorted(hol["class_amplitudes"].items()):
                        add("HOLIDAY", "local", s, s + DAY_US, "constant", a, country=c, cls=cls,
                            label=f"{d.isoformat()} {name}")
    H, B = horizon.n_buckets, horizon.bucket_us
    cam = gen["campaign"]
    amp = cam["amplitude_peak_stress"] if scenario["is_stress"] else cam["amplitude_peak"]
    h0 = _EPOCH + dt.timedelta(microseconds=horizon.start_us)
    h1 = _EPOCH + dt.timedelta(microseconds=horizon.end_us - 1)
    for y, m in _months(h0, h1):
        for i in range(cam["per_month"]):
            u = u_det(f"5A.calendar|{sid}|campaign_start", f"{y:04d}-{m:02d}", i)
            d = dt.date(y, m, 1 + int(u * pycal.monthrange(y, m)[1]))
            s = _date_us(d)
            if s < horizon.end_us and s + cam["days"] * DAY_US > horizon.start_us:
                add("CAMPAIGN", "utc", s, s + cam["days"] * DAY_US, "ramp", amp, cam["ramp_in_buckets"],
                    cam["ramp_out_buckets"], cls=cam["demand_class"], label=f"campaign {d.isoformat()}")
    out = gen["outage"]
    for i in range(math.ceil(horizon.days * out["per_day"]) if tzids else 0):
        tz = tzids[int(u_det(f"5A.calendar|{sid}|outage_tz", i) * len(tzids))]
        s = horizon.start_us + int(u_det(f"5A.calendar|{sid}|outage_start", i) * H) * B
        dur = out["duration_hours"][int(u_det(f"5A.calendar|{sid}|outage_len", i) * len(out["duration_hours"]))]
        add("OUTAGE", "utc", s, s + dur * HOUR_US, "constant", out["amplitude"], tz=tz, label=f"outage {i}")
    if scenario["is_stress"]:
        _stress(add, sid, horizon, sorted(countries), gen["stress"])
    return finish_calendar(rows)


def _synthetic_holidays(c, y, m, payday, hol, sid) -> list[dt.date]:
    n = 1 + (u_det(f"5A.calendar|{sid}|holiday_count", c, f"{y:04d}-{m:02d}") < hol["synthetic_fallback"]["p_second_day"])
    avoid = {payday, payday + dt.timedelta(days=1)}
    cands = [dt.date(y, m, d) for d in range(1, pycal.monthrange(y, m)[1] + 1) if dt.date(y, m, d) not in avoid]
    out = []
    for j in range(min(n, hol["max_per_country_month"])):
        u = u_det(f"5A.calendar|{sid}|holiday_day", c, f"{y:04d}-{m:02d}", j)
        out.append(cands.pop(int(u * len(cands))))
    return sorted(out)


def _stress(add, sid, horizon: Horizon, countries: list[str], st: dict) -> None:
    H, per_day = horizon.n_buckets, DAY_US // horizon.bucket_us

    def window(tag, lo, hi, *keys):
        days = lo + int(u_det(f"5A.calendar|{sid}|{tag}_days", *keys) * (hi - lo + 1))
        n = days * per_day
        s = int(u_det(f"5A.calendar|{sid}|{tag}_start", *keys) * max(1, H - n))
        return horizon.start_us + s * horizon.bucket_us, horizon.start_us + (s + n) * horizon.bucket_us
    g = st["global"]
    s, e = window("stress_global", g["days_min"], g["days_max"], 0)
    add("STRESS", "utc", s, e, "constant", g["amplitude"], label="stress global")
    c = st["country"]
    if countries:
        k = c["count_min"] + int(u_det(f"5A.calendar|{sid}|stress_country_count") * (c["count_max"] - c["count_min"] + 1))
        for i in range(k):
            iso = countries[int(u_det(f"5A.calendar|{sid}|stress_country", i) * len(countries))]
            s, e = window("stress_country", c["days_min"], c["days_max"], i)
            add("STRESS", "utc", s, e, "constant", c["amplitude"], country=iso, label=f"stress {iso}")


def _canon(row: dict) -> str:
    return json.dumps({k: row[k] for k in sorted(row) if k != "event_id"}, sort_keys=True, separators=(",", ":"))


def finish_calendar(rows: list[dict]) -> pl.DataFrame:
    """Add event ids (first 16 hex of SHA-256 of the canonical row) and sort; `rows` may be hand-written."""
    for r in rows:
        for k in CALENDAR_SCHEMA:
            r.setdefault(k, None)
        if r["label"] is None:
            r["label"] = ""
        r["event_id"] = hashlib.sha256(_canon(r).encode()).hexdigest()[:16]
    df = pl.DataFrame(rows, schema=CALENDAR_SCHEMA) if rows else pl.DataFrame(schema=CALENDAR_SCHEMA)
    return df.sort(["start_us", "event_type", "event_id"])


def calendar_sha256(cal: pl.DataFrame) -> str:
    """SHA-256 over the canonical JSON of the sorted events (the manifest's calendar_sha256)."""
    h = hashlib.sha256()
    for r in cal.iter_rows(named=True):
        h.update((_canon(r) + "|" + r["event_id"] + "\n").encode())
    return h.hexdigest()


def validate_calendar(cal: pl.DataFrame, overlay: dict, horizon: Horizon, code_prefix: str = "5A.S0") -> None:
    """Bounds, scopes, ramps and sizes against the overlay policy; fail closed (`<code>.CALENDAR_INVALID`)."""
    def bad(msg, **ctx):
        return EngineFailure(f"{code_prefix}.CALENDAR_INVALID", msg, ctx)
    cv, types = overlay["calendar_validation"], overlay["event_types"]
    if cal.height > cv["max_events_per_scenario"]:
        raise bad("too many events", n=cal.height, max=cv["max_events_per_scenario"])
    if cal["event_id"].is_duplicated().any():
        raise bad("duplicate event_id")
    rmax = overlay["shape_kinds"]["ramp"]
    for r in cal.iter_rows(named=True):          # ≤ max_events rows: calendar events, not data rows
        et = r["event_type"]
        if et not in EVENT_TYPES:
            raise bad("unknown event type", event_id=r["event_id"], event_type=et)
        spec = types[et]
        lo, hi = spec["bounds"]
        if not lo <= r["amplitude"] <= hi or not math.isfinite(r["amplitude"]):
            raise bad("amplitude outside the type's bounds", event_id=r["event_id"], amplitude=r["amplitude"],
                      bounds=f"[{lo}, {hi}]")
        if r["time_basis"] != spec["time_basis"] or r["shape_kind"] != spec["shape_kind"]:
            raise bad("time basis or shape kind differs from the policy", event_id=r["event_id"])
        if r["end_us"] <= r["start_us"]:
            raise bad("empty or reversed window", event_id=r["event_id"])
        if r["ramp_in_buckets"] > rmax["ramp_in_buckets_max"] or r["ramp_out_buckets"] > rmax["ramp_out_buckets_max"]:
            raise bad("ramp longer than allowed", event_id=r["event_id"])
        preds = {"country": r["country_iso"], "tzid": r["tzid"], "demand_class": r["demand_class"],
                 "merchant": r["merchant_id"]}
        used = [k for k, v in preds.items() if v is not None]
        scopes = set(spec["scopes"])
        if not used and "global" not in scopes:
            raise bad("global scope not allowed for this type", event_id=r["event_id"])
        if set(used) - scopes:
            raise bad("scope predicate not allowed for this type", event_id=r["event_id"], scopes=",".join(used))
        if overlay["scope_rules"]["merchant_scope_is_exclusive"] and "merchant" in used and len(used) > 1:
            raise bad("a merchant-scoped event cannot carry other predicates", event_id=r["event_id"])
        if r["time_basis"] == "utc" and (r["end_us"] <= horizon.start_us or r["start_us"] >= horizon.end_us):
            raise bad("UTC window outside the horizon", event_id=r["event_id"])
