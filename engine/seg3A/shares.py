"""3A.S3: Dirichlet zone shares for escalated pairs (RNG family 3A.zone_dirichlet, one stream per pair).

Work: escalated pairs sorted by (merchant_id, legal_country_iso), zones of Z(c) in tzid order (CSR).
The dispersion transform lowers the prior's concentration (α' = 0.65·α with the defaults), the main
realism lever for merchant-to-merchant spread. Streams are keyed `merchant_id|iso`, so each pair's
draws start at its own counter and do not depend on the order of work.
"""
from __future__ import annotations

import numpy as np
import polars as pl

from engine.core import rng
from engine.core.errors import EngineFailure
from engine.core.hash_uniform import hash_uniform, hex16
from engine.core.integerise import group_offsets

from . import kernels

FAMILY = "3A.zone_dirichlet"


def pair_keys(df: pl.DataFrame):
    return df.select(pl.format("{}|{}", "merchant_id", "legal_country_iso")).to_series().to_arrow()


def pair_streams(identity: dict, pairs: pl.DataFrame) -> np.ndarray:
    """(n, 3) stream rows (key, ctr_hi, ctr_lo) of family 3A.zone_dirichlet, one per pair."""
    if pairs.height == 0:
        return np.zeros((0, 3), np.uint64)
    return rng.derive_streams(FAMILY, identity["manifest_fingerprint"], identity["parameter_hash"],
                              identity["seed"], "", pair_keys(pairs))


def share_rows(queue: pl.DataFrame, priors: pl.DataFrame, code: str = "3A.S3") -> pl.DataFrame:
    """Escalated pairs × Z(c), sorted (merchant_id, legal_country_iso, tzid), with alpha_effective."""
    esc = queue.filter(pl.col("is_escalated")).select("merchant_id", "legal_country_iso", "site_count")
    pri = priors.select(pl.col("country_iso").alias("legal_country_iso"), "tzid", "alpha_effective")
    miss = esc.join(pri, on="legal_country_iso", how="anti")
    if miss.height:
        raise EngineFailure(f"{code}.PRIORS_MISSING_FOR_COUNTRY", "escalated pair's country has no priors",
                            {"country": miss["legal_country_iso"][0], "merchant_id": miss["merchant_id"][0]})
    return esc.join(pri, on="legal_country_iso", how="inner").sort("merchant_id", "legal_country_iso", "tzid")


def draw_shares(queue: pl.DataFrame, priors: pl.DataFrame, policy: dict, identity: dict,
                code: str = "3A.S3") -> tuple[pl.DataFrame, pl.DataFrame, rng.RngTrace]:
    """-> (s3_zone_shares rows, one aggregated rng event per pair, trace)."""
    rows = share_rows(queue, priors, code)
    off = group_offsets(rows, ["merchant_id", "legal_country_iso"])
    pairs = rows.select(pl.col("merchant_id", "legal_country_iso").gather(off[:-1]))
    disp = policy["s3_dispersion"]
    a = rows["alpha_effective"].to_numpy().astype(np.float64)
    if np.any(~(a > 0)):
        raise EngineFailure(f"{code}.NONPOSITIVE_ALPHA", "alpha_effective must be > 0", {})
    ju = hash_uniform("3A.S3.jitter", pairs["merchant_id"], pairs["legal_country_iso"]) \
        if disp["merchant_jitter"] > 0 and pairs.height else np.zeros(pairs.height)
    alpha = kernels.dispersed_alphas(off, a, ju, float(disp["concentration_scale"]), float(disp["alpha_temperature"]),
                                     float(disp["merchant_jitter"]), float(disp["merchant_jitter_clip"]),
                                     float(disp["alpha_floor"]), bool(disp["enabled"]))
    st = pair_streams(identity, pairs)
    share, end, bad = kernels.dirichlet_pairs(st, off, alpha)
    if bad >= 0:
        raise EngineFailure(f"{code}.GAMMA_NUMERIC", "gamma draws sum to 0 or overflow",
                            {"merchant_id": pairs["merchant_id"][bad], "country": pairs["legal_country_iso"][bad]})
    k = np.diff(off)
    out = rows.with_columns(pl.Series("share_drawn", share), pl.Series("alpha_dispersed", alpha)).with_columns(
        pl.col("share_drawn").sum().over("merchant_id", "legal_country_iso").alias("share_sum_country"),
        pl.col("alpha_dispersed").sum().over("merchant_id", "legal_country_iso").alias("alpha_sum_country"),
        pl.Series("rng_stream_id", np.repeat(hex16(st[:, 0]), k) if len(k) else np.zeros(0, str), pl.String))
    events = pairs.with_columns(
        pl.Series("k", k.astype(np.int16)), pl.Series("draws", end[:, 3].astype(np.int64)),
        pl.Series("blocks", end[:, 4].astype(np.int64)),
        pl.Series("counter_before", np.char.add(hex16(st[:, 1]), hex16(st[:, 2])) if len(k) else np.zeros(0, str), pl.String),
        pl.Series("counter_after", np.char.add(hex16(end[:, 1]), hex16(end[:, 2])) if len(k) else np.zeros(0, str), pl.String))
    out = out.with_columns(pl.col("rng_stream_id").alias("rng_event_id"))   # one event per pair: its stream
    trace = rng.RngTrace()
    trace.add_states(FAMILY, st, end)
    return out.select("merchant_id", "legal_country_iso", "tzid", "site_count", "share_drawn", "share_sum_country",
                      "alpha_sum_country", "alpha_effective", "alpha_dispersed", "rng_stream_id", "rng_event_id"), \
        events, trace


def trace_reconciles(trace: dict, events: pl.DataFrame) -> bool:
    """Trace totals (family entry) equal the event sums, and events = pairs that drew."""
    e = trace.get(FAMILY, {"events": 0, "draws": 0, "blocks": 0})
    drew = events.filter(pl.col("blocks") > 0)
    return (e["events"] == drew.height and e["draws"] == int(events["draws"].sum())
            and e["blocks"] == int(events["blocks"].sum()))
