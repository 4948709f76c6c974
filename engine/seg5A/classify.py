"""5A.S1 logic: the merchant zones, demand class, channel group and weekly volume per (merchant, zone).

Frames in, frames out; no files. Domain = INTERFACES "Merchant zones": the `zone_alloc` tzids with a count
> 0, plus the `site_timezones` tzids of (merchant, country) pairs without `zone_alloc` rows; a tzid shared by
two countries is one zone under the country with more outlets (ties: the smaller ISO code), its sites summed.
So every zone has n >= 1 sites and w > 0 (the chapter's zero-count rows do not arise).
"""
from __future__ import annotations

import numpy as np
import polars as pl

from engine.core import detmath
from engine.core.errors import EngineFailure

from .common import u_det_columns

PROFILE_SORT = ["merchant_id", "zone_representation"]


def _fail(name: str, msg: str, **ctx) -> EngineFailure:
    return EngineFailure(f"5A.S1.{name}", msg, ctx)


def merchant_zones(zone_alloc: pl.DataFrame, site_timezones: pl.DataFrame) -> pl.DataFrame:
    """(merchant_id u64, legal_country_iso, zone_representation = tzid, zone_site_count i32), sorted."""
    za = zone_alloc.select(pl.col("merchant_id").cast(pl.UInt64), pl.col("legal_country_iso").cast(pl.String),
                           pl.col("tzid").cast(pl.String), pl.col("zone_site_count").cast(pl.Int64))
    if za.select(pl.struct("merchant_id", "legal_country_iso", "tzid").is_duplicated().any()).item():
        raise _fail("DOMAIN_DUPLICATE_KEY", "zone_alloc has a duplicate (merchant_id, legal_country_iso, tzid)")
    if za.select((pl.col("zone_site_count") < 0).any()).item():
        raise _fail("REQUIRED_INPUT_MISSING", "zone_alloc has a negative zone_site_count")
    st = site_timezones.select(pl.col("merchant_id").cast(pl.UInt64), pl.col("legal_country_iso").cast(pl.String),
                               pl.col("tzid").cast(pl.String))
    rest = (st.join(za.select("merchant_id", "legal_country_iso").unique(), on=["merchant_id", "legal_country_iso"],
                    how="anti")
            .group_by("merchant_id", "legal_country_iso", "tzid").agg(pl.len().cast(pl.Int64).alias("zone_site_count")))
    pairs = pl.concat([za.filter(pl.col("zone_site_count") > 0), rest.select(za.columns)])
    return (pairs.sort(["merchant_id", "tzid", "zone_site_count", "legal_country_iso"],
                       descending=[False, False, True, False])
            .group_by("merchant_id", "tzid", maintain_order=True)
            .agg(pl.col("legal_country_iso").first(), pl.col("zone_site_count").sum())
            .select("merchant_id", "legal_country_iso", pl.col("tzid").alias("zone_representation"),
                    pl.col("zone_site_count").cast(pl.Int32))
            .sort(PROFILE_SORT))


def sector_lookup(policy: dict) -> np.ndarray:
    """object[10000]: sector of every MCC 0..9999 (exact codes over ranges; unmapped -> 'other')."""
    m = policy["mcc_sector_map"]
    out = np.full(10000, "other", dtype=object)
    for r in m["ranges"]:
        out[r["lo"]:r["hi"] + 1] = r["sector"]
    for code, s in m["exact"].items():
        out[int(code)] = s
    return out


def preset_volume_scale(ds: dict, preset: str | None) -> float:
    """The preset's arrival-scale multiplier on every weekly volume (demand_scale_policy_5A header); 1 for a
    preset the policy does not list."""
    return float((ds.get("preset_volume_scale") or {}).get(preset, 1.0))


def classify(zones: pl.DataFrame, merchants: pl.DataFrame, virtual: pl.DataFrame | None,
             mc: dict, ds: dict, parameter_hash: str, volume_scale: float = 1.0) -> pl.DataFrame:
    """`merchant_zone_profile_5A` rows for the zones (chapter 5A §S1 steps 2-7), sorted by primary key.
    `volume_scale` is the preset's multiplier (`preset_volume_scale`), applied with global_multiplier."""
    m = merchants.select(pl.col("merchant_id").cast(pl.UInt64), pl.col("mcc").cast(pl.Int32),
                         pl.col("channel").cast(pl.String))
    if virtual is None:
        virtual = pl.DataFrame({"merchant_id": [], "virtual_mode": []},
                               schema={"merchant_id": pl.UInt64, "virtual_mode": pl.String})
    v = virtual.select(pl.col("merchant_id").cast(pl.UInt64), pl.col("virtual_mode").cast(pl.String))
    df = zones.join(m, on="merchant_id", how="left")
    if df["mcc"].null_count():
        bad = df.filter(pl.col("mcc").is_null())["merchant_id"].unique().sort().head(5).to_list()
        raise _fail("MERCHANT_JOIN_FAILED", "zone merchant not in the 1A merchant table", merchant_ids=bad)
    df = df.join(v, on="merchant_id", how="left").with_columns(pl.col("virtual_mode").fill_null("NON_VIRTUAL"))
    if not set(df["channel"].unique().to_list()) <= set(mc["channel_group_map"]):
        raise _fail("CLASS_ASSIGNMENT_FAILED", "unknown channel", channels=sorted(set(df["channel"].unique().to_list())))
    cg = pl.col("channel").replace_strict(mc["channel_group_map"])
    df = df.with_columns(
        pl.when((pl.col("virtual_mode") == "HYBRID") & (pl.col("channel") == "card_present"))
        .then(pl.lit(mc["hybrid_card_present_channel_group"])).otherwise(cg).alias("channel_group"))
    # features
    S = pl.col("zone_site_count").sum().over("merchant_id", "legal_country_iso")
    share = pl.col("zone_site_count") / pl.max_horizontal(pl.lit(1), S)
    zr = mc["subclass_rules"]["zone_role"]
    df = df.with_columns(S.cast(pl.Int32).alias("merchant_country_site_count"), share.alias("zone_site_share"))
    df = df.with_columns(
        pl.when(pl.col("zone_site_share") >= zr["primary_share_ge"]).then(pl.lit("primary_zone"))
        .when(pl.col("zone_site_share") <= zr["tail_share_le"]).then(pl.lit("tail_zone"))
        .otherwise(pl.lit("secondary_zone")).alias("zone_role"))
    mcc = df["mcc"].to_numpy()
    if mcc.min() < 0 or mcc.max() > 9999:
        raise _fail("CLASS_ASSIGNMENT_FAILED", "mcc outside 0..9999")
    df = df.with_columns(pl.Series("sector", sector_lookup(mc)[mcc].tolist(), dtype=pl.String))
    # class: virtual branch, else by (channel_group, sector), else the default
    tree = mc["decision_tree_v1"]
    nv = pl.lit(None, pl.String)
    for cgn, table in tree["nonvirtual_branch"]["by_channel_group"].items():
        for sec, cls in table.items():
            nv = pl.when((pl.col("channel_group") == cgn) & (pl.col("sector") == sec)).then(pl.lit(cls)).otherwise(nv)
    vb = tree["virtual_branch"]
    df = df.with_columns(
        pl.when(pl.col("virtual_mode") != "NON_VIRTUAL")
        .then(pl.col("virtual_mode").replace_strict(vb, default=None))
        .otherwise(nv.fill_null(pl.lit(mc["default_class"]))).alias("demand_class"),
        pl.when(pl.col("virtual_mode") != "NON_VIRTUAL")
        .then(pl.lit("virtual:") + pl.col("virtual_mode"))
        .otherwise(pl.lit("nonvirtual:") + pl.col("channel_group") + pl.lit(":") + pl.col("sector")).alias("class_source"))
    if df["demand_class"].null_count():
        raise _fail("CLASS_ASSIGNMENT_FAILED", "no class for a merchant-zone")
    return _scale(df, ds, parameter_hash, volume_scale).sort(PROFILE_SORT)


def _scale(df: pl.DataFrame, ds: dict, ph: str, volume_scale: float = 1.0) -> pl.DataFrame:
    """Per-site Pareto quantile and the weekly volume (chapter 5A §S1 steps 4-7)."""
    cp = {c["demand_class"]: c for c in ds["class_params"]}
    cls = df["demand_class"].to_list()
    missing = sorted(set(cls) - set(cp))
    if missing:
        raise _fail("SCALE_ASSIGNMENT_FAILED", "no class_params for class", classes=",".join(missing))
    med = np.array([cp[c]["median_per_site_weekly"] for c in cls], np.float64)
    alpha = np.array([cp[c]["pareto_alpha"] for c in cls], np.float64)
    clip = np.array([cp[c]["clip_max_per_site_weekly"] for c in cls], np.float64)
    ref = np.array([cp[c]["ref_per_site_weekly"] for c in cls], np.float64)
    hv = np.array([cp[c]["high_variability_flag"] for c in cls], bool)
    u, _ = u_det_columns("5A.scale|per_site", df["merchant_id"].to_list(), df["legal_country_iso"].to_list(),
                         df["zone_representation"].to_list(), [ph] * df.height)
    x_m = med * detmath.exp(-detmath.log(np.full(len(med), 2.0)) / alpha)      # med / 2^(1/α)
    per_site = np.minimum(x_m * detmath.exp(-detmath.log(1.0 - u) / alpha), clip)
    n = df["zone_site_count"].to_numpy().astype(np.float64)
    S = np.maximum(1.0, df["merchant_country_site_count"].to_numpy().astype(np.float64))
    role = df["zone_role"].replace_strict(ds["zone_role_multipliers"], return_dtype=pl.Float64).to_numpy()
    virt = df["virtual_mode"].replace_strict(ds["virtual_mode_multipliers"], return_dtype=pl.Float64).to_numpy()
    chan = df["channel_group"].replace_strict(ds["channel_group_multipliers"], return_dtype=pl.Float64).to_numpy()
    brand = detmath.exp(ds["brand_size_exponent"] * detmath.log(S))
    w = ds["global_multiplier"] * volume_scale * n * per_site * role * brand * virt * chan
    w = np.where(n > 0, w, 0.0)
    rt = ds["realism_targets"]
    cap = rt["max_weekly_volume_expected"]
    w = np.where(w > cap, np.minimum(cap + rt["soft_cap_ratio"] * (w - cap), rt["soft_cap_multiplier"] * cap), w)
    if not np.all(np.isfinite(w)) or np.any(w < 0) or np.any(w > ds["hard_limits"]["max_weekly_volume_expected"]):
        raise _fail("SCALE_ASSIGNMENT_FAILED", "weekly volume non-finite, negative or above the hard limit")
    if np.any((w > 0) != (n > 0)):
        raise _fail("SCALE_ASSIGNMENT_FAILED", "w = 0 must hold exactly when zone_site_count = 0")
    return df.with_columns(
        pl.Series("weekly_volume_expected", w),
        pl.Series("scale_factor", np.where(n > 0, w / np.maximum(n, 1.0) / ref, 0.0)),
        pl.Series("high_variability_flag", hv),
        pl.Series("low_volume_flag", w < ds["thresholds"]["low_volume_weekly_lt"]),
        (pl.col("virtual_mode") != "NON_VIRTUAL").alias("virtual_preferred_flag"),
        pl.lit(ds["weekly_volume_unit"]).alias("weekly_volume_unit"),
    ).select(PROFILE_COLUMNS)


PROFILE_COLUMNS = ["merchant_id", "zone_representation", "legal_country_iso", "channel_group", "virtual_mode",
                   "zone_site_count", "merchant_country_site_count", "zone_site_share", "zone_role", "sector",
                   "demand_class", "class_source", "weekly_volume_expected", "weekly_volume_unit", "scale_factor",
                   "high_variability_flag", "low_volume_flag", "virtual_preferred_flag"]


def class_profile(profile: pl.DataFrame) -> pl.DataFrame:
    """`merchant_class_profile_5A`: per merchant the class of largest Σw (ties: smallest class name).

    Sums run in numpy over the sorted profile (fixed order, no parallel float reductions)."""
    p = profile.sort(PROFILE_SORT)
    mid = p["merchant_id"].to_numpy()
    w = p["weekly_volume_expected"].to_numpy()
    starts = np.flatnonzero(np.r_[True, mid[1:] != mid[:-1]])
    total = np.add.reduceat(w, starts) if len(w) else np.zeros(0)
    q = p.sort(["merchant_id", "demand_class", "zone_representation"])
    qm, qc, qw = q["merchant_id"].to_numpy(), q["demand_class"].to_numpy(), q["weekly_volume_expected"].to_numpy()
    cut = np.flatnonzero(np.r_[True, (qm[1:] != qm[:-1]) | (qc[1:] != qc[:-1])])
    per = pl.DataFrame({"merchant_id": qm[cut], "demand_class": qc[cut],
                        "w": np.add.reduceat(qw, cut) if len(qw) else np.zeros(0)},
                       schema={"merchant_id": pl.UInt64, "demand_class": pl.String, "w": pl.Float64})
    prim = (per.sort(["merchant_id", "w", "demand_class"], descending=[False, True, False])
            .group_by("merchant_id", maintain_order=True).agg(pl.col("demand_class").first()))
    agg = p.group_by("merchant_id", maintain_order=True).agg(
        pl.col("channel_group").first(),
        pl.col("demand_class").unique().sort().alias("classes_seen"),
        pl.len().cast(pl.Int32).alias("n_zones"))
    agg = agg.with_columns(pl.Series("weekly_volume_total_expected", total))
    return (prim.join(agg, on="merchant_id")
            .select("merchant_id", "demand_class", "channel_group", "classes_seen", "weekly_volume_total_expected",
                    "n_zones").sort("merchant_id"))
