"""2A.S1/S2 logic: one IANA tzid per site, from polygons, one nudge, governed overrides, fallback.

Chapter 2A2B §3 2A.S1, vectorised over all sites (site-key order):
1. candidates = land zones whose polygon holds the point AND that tzdata lists for the site's
   country (link names canonicalised); exactly one -> source `polygon`.
2. otherwise one nudge (lat + ε clamped, lon + ε wrapped into (-180, 180]) and step 1 again;
   the nudged coordinates are recorded (both or neither) whether or not the nudge settles it.
3. still open -> active overrides by precedence site > mcc > country -> source `override`.
4. still open and allowed -> the country's principal tzid -> source `country_fallback`
   (share capped by tz_policy.max_fallback_share + 3 binomial standard errors at n sites).
Then every tzid must be in the pinned tzdata and belong to the site's country; an override may
name a zone outside the country (it is governed and counted, never silent).
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from engine.core.errors import EngineFailure

from .tz_polygons import TzPolygons, load_polygons
from .tz_tables import ZoneTables, strings, zone_tables

KEY = ["merchant_id", "legal_country_iso", "site_order"]
SCOPES = ("site", "mcc", "country")          # precedence order


def share_limit(p_max: float, n: int) -> float:
    """The policy's maximum share of sites plus three binomial standard errors at n sites: the policy
    bounds a rate, and a 50-merchant world's ~200 sites observe it with ~1.5 points of noise."""
    return float(p_max + 3.0 * (p_max * (1.0 - p_max) / max(n, 1)) ** 0.5)


def nudge(lat: np.ndarray, lon: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """The chapter's single nudge: lat' = clamp(lat + ε), lon' = ((lon + ε + 180) mod 360) - 180, -180 -> 180."""
    lat2 = np.clip(lat + eps, -90.0, 90.0)
    lon2 = np.mod(lon + eps + 180.0, 360.0) - 180.0
    return lat2, np.where(lon2 == -180.0, 180.0, lon2)


def candidates(lat, lon, iso, polys: TzPolygons, tables: ZoneTables) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per point: the single in-country zone name (or None), the number of in-country zones hit
    and the number of land zones hit at all (diagnostics: 0 = sea/gap, >1 = border)."""
    n = len(lat)
    pt, zn = polys.hits(lat, lon)
    names = np.asarray(polys.names, dtype=object)[zn]
    ok = tables.member_mask(names, np.asarray(iso, dtype=object)[pt]) if len(pt) else np.zeros(0, bool)
    n_hit = np.bincount(pt, minlength=n)
    n_ok = np.bincount(pt[ok], minlength=n)
    tz = np.full(n, None, dtype=object)
    tz[pt[ok]] = names[ok]
    tz[n_ok != 1] = None
    return tz, n_ok, n_hit


def active_overrides(doc: dict, run_date: dt.date) -> pl.DataFrame:
    """Active entries (expiry null or >= run date); two active entries for one (scope, target) fail."""
    rows = [o for o in doc["overrides"]
            if o["expiry_yyyy_mm_dd"] is None or dt.date.fromisoformat(o["expiry_yyyy_mm_dd"]) >= run_date]
    df = pl.DataFrame({"scope": [o["scope"] for o in rows], "target": [o["target"] for o in rows],
                       "tzid": [o["tzid"] for o in rows]}, schema={"scope": pl.String, "target": pl.String,
                                                                   "tzid": pl.String})
    dup = df.filter(pl.struct("scope", "target").is_duplicated())
    if dup.height:
        raise EngineFailure("2A.S1.OVERRIDE_DUPLICATE_SCOPE_TARGET", "two active overrides share a scope and "
                            "target; keep one in config/2A/tz_overrides.yaml",
                            {"scope": dup["scope"][0], "target": dup["target"][0]})
    return df


def _override_targets(open_: pl.DataFrame, mcc: pl.DataFrame | None) -> pl.DataFrame:
    """Per unresolved site, its target string in each scope (mcc null without an MCC map)."""
    t = open_.with_columns(
        pl.format("{}:{}:{}", "merchant_id", "legal_country_iso", "site_order").alias("t_site"),
        pl.col("legal_country_iso").alias("t_country"))
    if mcc is not None:
        m = mcc.select(pl.col("merchant_id").cast(pl.UInt64), pl.col("mcc").cast(pl.Int64).cast(pl.String)
                       .str.zfill(4).alias("t_mcc"))
        return t.join(m, on="merchant_id", how="left", maintain_order="left")
    return t.with_columns(pl.lit(None, pl.String).alias("t_mcc"))


def apply_overrides(open_: pl.DataFrame, ov: pl.DataFrame, mcc: pl.DataFrame | None) -> pl.DataFrame:
    """Adds `override_tzid` and `override_scope` (null where no active override matches)."""
    t = _override_targets(open_, mcc)
    tz, scope = pl.lit(None, pl.String), pl.lit(None, pl.String)
    for s in reversed(SCOPES):               # lowest precedence first, so higher scopes overwrite
        o = ov.filter(pl.col("scope") == s).select(pl.col("target").alias(f"t_{s}"), pl.col("tzid").alias(f"o_{s}"))
        t = t.join(o, on=f"t_{s}", how="left", maintain_order="left")
        hit = pl.col(f"o_{s}").is_not_null()
        tz = pl.when(hit).then(pl.col(f"o_{s}")).otherwise(tz)
        scope = pl.when(hit).then(pl.lit(s)).otherwise(scope)
    return t.with_columns(tz.alias("override_tzid"), scope.alias("override_scope")) \
        .drop([f"t_{s}" for s in SCOPES] + [f"o_{s}" for s in SCOPES])


def _check_sites(sites: pl.DataFrame) -> pl.DataFrame:
    need = KEY + ["lat_deg", "lon_deg"]
    miss = [c for c in need if c not in sites.columns]
    if miss:
        raise EngineFailure("2A.S1.INPUT_INVALID", "site table lacks columns", {"columns": ",".join(miss)})
    s = sites.select(pl.col("merchant_id").cast(pl.UInt64), pl.col("legal_country_iso").cast(pl.String),
                     pl.col("site_order").cast(pl.Int32), pl.col("lat_deg").cast(pl.Float64),
                     pl.col("lon_deg").cast(pl.Float64)).sort(KEY)
    if s.select(pl.struct(KEY).is_duplicated().any()).item():
        raise EngineFailure("2A.S1.PK_DUPLICATE", "site key repeated in site_locations", {})
    lat, lon = s["lat_deg"].to_numpy(), s["lon_deg"].to_numpy()
    bad = ~(np.isfinite(lat) & np.isfinite(lon) & (np.abs(lat) <= 90) & (np.abs(lon) <= 180))
    if bad.any():
        i = int(np.argmax(bad))
        raise EngineFailure("2A.S1.INPUT_INVALID", "site coordinates not finite or out of range",
                            {k: s[k][i] for k in KEY + ["lat_deg", "lon_deg"]})
    return s


def resolve(sites: pl.DataFrame, nudge_policy: dict, overrides_policy: dict, tz_policy: dict,
            run_date: dt.date, mcc: pl.DataFrame | None = None, polys: TzPolygons | None = None,
            tables: ZoneTables | None = None) -> tuple[pl.DataFrame, dict]:
    """The s1_tz_lookup table (site-key order) and its counts.

    `sites`: site key + lat_deg, lon_deg. `mcc`: optional (merchant_id, mcc) for MCC-scope overrides.
    """
    polys = polys or load_polygons()
    tables = tables or zone_tables()
    s = _check_sites(sites)
    n = s.height
    lat, lon = s["lat_deg"].to_numpy(), s["lon_deg"].to_numpy()
    iso = s["legal_country_iso"].to_numpy()
    tz, n_ok, n_hit = candidates(lat, lon, iso, polys, tables)

    need = np.flatnonzero(np.equal(tz, None))          # object array: element-wise None test
    nlat = np.full(n, np.nan)
    nlon = np.full(n, np.nan)
    if len(need):
        la2, lo2 = nudge(lat[need], lon[need], float(nudge_policy["epsilon_degrees"]))
        tz2, _, _ = candidates(la2, lo2, iso[need], polys, tables)
        tz[need] = tz2
        nlat[need], nlon[need] = la2, lo2
    source = np.where(np.equal(tz, None), None, "polygon").astype(object)

    out = s.with_columns(strings(tz).alias("tzid_provisional"),
                         strings(source).alias("tzid_provisional_source"),
                         pl.Series("nudge_lat_deg", nlat).fill_nan(None),
                         pl.Series("nudge_lon_deg", nlon).fill_nan(None),
                         pl.lit(None, pl.String).alias("override_scope"))
    open_ = out.with_row_index("_row").filter(pl.col("tzid_provisional").is_null())
    counts = {"sites_total": n, "polygon_direct": int(n - len(need)), "nudged": len(need),
              "nudge_resolved": int(len(need) - open_.height),
              "no_land_polygon": int((n_hit == 0).sum()), "border_or_foreign_zone": int(((n_hit > 0) & (n_ok != 1)).sum())}

    if open_.height:
        ov = active_overrides(overrides_policy, run_date)
        o = apply_overrides(open_.select("_row", *KEY), ov, mcc)
        fill = o.filter(pl.col("override_tzid").is_not_null())
        rest = o.filter(pl.col("override_tzid").is_null())
        if rest.height:
            if not tz_policy["allow_country_fallback"]:
                r = rest.row(0, named=True)
                raise EngineFailure("2A.S1.BORDER_AMBIGUITY_UNRESOLVED", "no polygon, nudge or override settles "
                                    "this site and country fallback is off; add an override",
                                    {k: r[k] for k in KEY})
            fb = rest.with_columns(pl.col("legal_country_iso").replace_strict(tables.principals, default=None)
                                   .alias("fb"))
            unknown = fb.filter(pl.col("fb").is_null())
            if unknown.height:
                r = unknown.row(0, named=True)
                raise EngineFailure("2A.S1.BORDER_AMBIGUITY_UNRESOLVED", "the site's country has no zone in "
                                    "tzdata's zone tables; add an override", {k: r[k] for k in KEY})
            share, cap = fb.height / n, share_limit(tz_policy["max_fallback_share"], n)
            if share > cap:
                raise EngineFailure("2A.S1.FALLBACK_CAP_EXCEEDED", "too many sites fall back to their country's "
                                    "principal zone", {"share": round(share, 6), "cap": round(cap, 6),
                                                       "policy": tz_policy["max_fallback_share"], "sites": n})
            fill = pl.concat([fill, fb.select(*fill.columns[:-2], pl.col("fb").alias("override_tzid"),
                                              pl.lit("country_fallback").alias("override_scope"))])
        patch = fill.select("_row", pl.col("override_tzid").alias("tz_fill"), pl.col("override_scope").alias("sc"))
        out = out.with_row_index("_row").join(patch, on="_row", how="left", maintain_order="left").with_columns(
            pl.coalesce("tzid_provisional", "tz_fill").alias("tzid_provisional"),
            pl.when(pl.col("sc") == "country_fallback").then(pl.lit("country_fallback"))
            .when(pl.col("sc").is_not_null()).then(pl.lit("override"))
            .otherwise(pl.col("tzid_provisional_source")).alias("tzid_provisional_source"),
            pl.when(pl.col("sc") != "country_fallback").then(pl.col("sc")).alias("override_scope"),
        ).drop("_row", "tz_fill", "sc")

    out = out.with_columns(pl.col("override_scope").is_not_null().alias("override_applied")).select(
        *KEY, "lat_deg", "lon_deg", "tzid_provisional", "tzid_provisional_source", "override_scope",
        "override_applied", "nudge_lat_deg", "nudge_lon_deg")
    src = out["tzid_provisional_source"]
    counts.update({"override": int((src == "override").sum()), "country_fallback": int((src == "country_fallback").sum()),
                   **{f"override_{sc}": int((out["override_scope"] == sc).sum()) for sc in SCOPES}})
    check_final(out["tzid_provisional"], out["tzid_provisional_source"], out, tables, "S1")
    counts["override_outside_country"] = int((~tables.member_mask(out["tzid_provisional"].to_numpy(),
                                                                   out["legal_country_iso"].to_numpy())).sum())
    return out, counts


def check_final(tzid: pl.Series, source: pl.Series, keys: pl.DataFrame, tables: ZoneTables, state: str) -> None:
    """Every tzid known to tzdata; every non-override tzid listed for the site's country."""
    t = tzid.to_numpy()
    known = strings(t).is_in(sorted(tables.zones)).fill_null(False)
    if not known.all():
        i = int(np.argmax(~known.to_numpy()))
        raise EngineFailure(f"2A.{state}.UNKNOWN_TZID", "tzid is not in the pinned tzdata",
                            {"tzid": t[i], **{k: keys[k][i] for k in KEY}})
    ok = tables.member_mask(t, keys["legal_country_iso"].to_numpy()) | (source == "override").to_numpy()
    if not ok.all():
        i = int(np.argmax(~ok))
        raise EngineFailure(f"2A.{state}.TZID_NOT_IN_COUNTRY", "tzid is not listed for the site's country in "
                            "tzdata's zone tables", {"tzid": t[i], **{k: keys[k][i] for k in KEY}})


def final_site_timezones(s1: pl.DataFrame, overrides_policy: dict, run_date: dt.date,
                         mcc: pl.DataFrame | None = None, tables: ZoneTables | None = None) -> pl.DataFrame:
    """2A.S2: copy S1 to the egress columns after re-checking provenance and membership."""
    tables = tables or zone_tables()
    bad_nudge = s1["nudge_lat_deg"].is_null() != s1["nudge_lon_deg"].is_null()
    if bad_nudge.any():
        raise EngineFailure("2A.S1.NUDGE_PAIR_VIOLATION", "nudge coordinates must be both set or both null", {})
    flags = (s1["tzid_provisional_source"] == "override") != s1["override_scope"].is_not_null()
    if flags.any() or (s1["override_applied"] != s1["override_scope"].is_not_null()).any():
        raise EngineFailure("2A.S2.PROVENANCE_INVALID", "override source, scope and flag disagree", {})
    ov_rows = s1.with_row_index("_row").filter(pl.col("tzid_provisional_source") == "override")
    if ov_rows.height:
        chk = apply_overrides(ov_rows.select("_row", *KEY), active_overrides(overrides_policy, run_date), mcc)
        chk = chk.join(ov_rows.select("_row", "tzid_provisional", pl.col("override_scope").alias("rec")), on="_row")
        wrong = chk.filter((pl.col("override_tzid") != pl.col("tzid_provisional")).fill_null(True)
                           | (pl.col("override_scope") != pl.col("rec")).fill_null(True))
        if wrong.height:
            r = wrong.row(0, named=True)
            raise EngineFailure("2A.S2.OVERRIDE_EXPIRED", "an override row no longer matches an active override "
                                "of its scope", {k: r[k] for k in KEY})
    check_final(s1["tzid_provisional"], s1["tzid_provisional_source"], s1, tables, "S2")
    return s1.select(*KEY, pl.col("tzid_provisional").alias("tzid"),
                     pl.col("tzid_provisional_source").alias("tzid_source"),
                     "override_scope", "nudge_lat_deg", "nudge_lon_deg")


def tz_domain(overrides_policy: dict, polys: TzPolygons | None = None, tables: ZoneTables | None = None) -> list[str]:
    """2A.S3's seed-independent tzid domain: zone-table zones, polygon land zones and override
    tzids (names as used, so every assigned tzid is in it), ASCII-sorted."""
    polys = polys or load_polygons()
    tables = tables or zone_tables()
    dom = {tz for zs in tables.country_zones.values() for tz in zs}
    dom |= set(tables.principals.values())
    dom |= {polys.names[z] for z in np.unique(polys.geom_zone)}
    dom |= {o["tzid"] for o in overrides_policy["overrides"]}
    return sorted(dom)
