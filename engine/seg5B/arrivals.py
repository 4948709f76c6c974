"""5B.S4 arrival events: routing arrays, per-batch expansion kernel call, Arrow assembly, streaming.

Inputs are built once per run (`RoutingPlan`: site alias slices per (merchant, tzid) from 2B.S2
plus a merchant-wide fallback slice per merchant built here from 2B.S1 `m_q`, the 3B edge alias,
settlement tz) and once per scenario domain (`CoarsePlan`: per (merchant, zone, channel) its
streams, slice and codes). The S3 rows with count_N > 0 are cut into merchant-contiguous batches;
each batch is one numba call filling preallocated arrays and one Arrow table handed to `sink`
(e.g. a `DatasetWriter`), so memory is bounded by the batch. Rows are a pure function of
(row, k), never of batch boundaries or thread count (tests/test_5B_logic.py).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import yaml

from engine.core import alias, ids, rng
from engine.core.civil_time import CivilTimeCache
from engine.core.contracts import arrow_type
from engine.core.errors import EngineFailure

from . import kernels as K
from .logic import SEG, Derive, Grid, channel_codes, coarse_key_strings, mode_codes
from .policies import CHANNELS

SCHEMAS = Path(__file__).resolve().parents[2] / "contracts" / "datasets" / "5B"
FAMILIES = ("arrival_time_jitter", "arrival_site_pick", "arrival_edge_pick")


def arrow_schema(dataset_id: str) -> pa.Schema:
    """Arrow schema of a 5B dataset from its contract (x-arrow types, in contract order)."""
    doc = yaml.safe_load((SCHEMAS / f"{dataset_id}.schema.yaml").read_text())
    return pa.schema([(k, arrow_type(v["x-arrow"])) for k, v in doc["properties"].items()])


def _fail(code: str, msg: str, **ctx) -> EngineFailure:
    return EngineFailure(f"{SEG}.S4.{code}", msg, ctx)


# ---------------------------------------------------------------- routing plan (once per run)

@dataclass(frozen=True)
class RoutingPlan:
    merchant_ids: np.ndarray      # u64, sorted: the merchant index space
    m_mode: np.ndarray            # int8 MODES code
    m_edge_lo: np.ndarray         # int64 first edge row (edges sorted by merchant, edge_seq_index)
    m_edge_n: np.ndarray          # int64
    m_settle_tz: np.ndarray       # int32 tz_index of tzid_settlement, -1 none
    m_fallback: np.ndarray        # int64 merchant-wide slice, -1 no sites
    zone_slices: pl.DataFrame     # merchant_id, zone_representation, slice
    sl_off: np.ndarray            # slice CSR over slots: zone slices, then fallback slices
    sl_prob_q: np.ndarray
    sl_alias: np.ndarray
    slot_site_id: np.ndarray
    slot_tz: np.ndarray
    e_prob_q: np.ndarray
    e_alias: np.ndarray
    e_id: np.ndarray
    e_tz: np.ndarray
    ms_off: np.ndarray            # audit: per merchant, its site ids sorted, with their tz
    ms_site: np.ndarray
    ms_tz: np.ndarray
    me_off: np.ndarray            # audit: per merchant, its edge ids sorted, with their tz
    me_edge: np.ndarray
    me_tz: np.ndarray
    cache: CivilTimeCache

    def merchant_index(self, merchant_id) -> np.ndarray:
        """int64 index of each merchant id, -1 when unknown; looked up once per run of equal ids (event
        tables are merchant-major)."""
        m = np.asarray(merchant_id, np.uint64)
        if not len(m):
            return np.zeros(0, np.int64)
        s = np.flatnonzero(np.r_[True, m[1:] != m[:-1]])
        u = m[s]
        i = np.searchsorted(self.merchant_ids, u)
        ok = i < len(self.merchant_ids)
        ok[ok] = self.merchant_ids[i[ok]] == u[ok]
        return np.repeat(np.where(ok, i, -1).astype(np.int64), np.diff(np.append(s, len(m))))


def _csr(owner_idx: np.ndarray, n: int) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(np.bincount(owner_idx, minlength=n))]).astype(np.int64)


def edge_alias_columns(index: pl.DataFrame, blob: bytes) -> pl.DataFrame:
    """3B.S3 edge alias index (merchant_id, blob_offset_bytes, blob_length_bytes) + blob ->
    (merchant_id, edge_seq_index, prob_q, alias) rows, slot = edge_seq_index."""
    idx = index.sort("merchant_id")
    off, pq, al = alias.unpack_edge_blob(blob, idx["blob_offset_bytes"].to_numpy(),
                                         idx["blob_length_bytes"].to_numpy(), code=f"{SEG}.S4.EDGE_RESOLUTION_FAILED")
    n = np.diff(off)
    return pl.DataFrame({"merchant_id": np.repeat(idx["merchant_id"].to_numpy().astype(np.uint64), n),
                         "edge_seq_index": (np.arange(off[-1]) - np.repeat(off[:-1], n)).astype(np.int32),
                         "prob_q": pq, "alias": al})


def build_routing_plan(site_weights: pl.DataFrame, alias_table: pl.DataFrame, classification: pl.DataFrame,
                       settlement: pl.DataFrame, edges: pl.DataFrame, cache: CivilTimeCache) -> RoutingPlan:
    """`site_weights`: 2B.S1 (merchant_id, legal_country_iso, site_order, tz_group_id, m_q);
    `alias_table`: 2B.S2 (merchant_id, tz_group_id, slot, legal_country_iso, site_order, prob_q, alias_slot);
    `classification`: 3B (merchant_id, virtual_mode); `settlement`: (merchant_id, tzid_settlement);
    `edges`: 3B catalogue (merchant_id, edge_id, edge_seq_index, tzid_operational) joined with
    its alias (prob_q, alias; see `edge_alias_columns`)."""
    tzc = f"{SEG}.S4.DST_MAPPING_FAILED"
    cls = classification.select(pl.col("merchant_id").cast(pl.UInt64), "virtual_mode").sort("merchant_id")
    mids = cls["merchant_id"].to_numpy()
    if len(np.unique(mids)) != len(mids):
        raise _fail("SITE_RESOLUTION_FAILED", "duplicate merchant in virtual_classification")
    nm = len(mids)

    def midx(s: pl.Series, what: str) -> np.ndarray:
        i = np.searchsorted(mids, s.cast(pl.UInt64).to_numpy())
        i = np.minimum(i, max(nm - 1, 0))
        if nm == 0 or np.any(mids[i] != s.cast(pl.UInt64).to_numpy()):
            raise _fail("SITE_RESOLUTION_FAILED", f"{what} of a merchant missing from virtual_classification")
        return i.astype(np.int64)

    # zone slices (2B.S2 table as is)
    at = alias_table.with_columns(pl.col("merchant_id").cast(pl.UInt64)).sort("merchant_id", "tz_group_id", "slot")
    zs = at.select(pl.struct("merchant_id", "tz_group_id").rle_id().alias("s"))["s"].to_numpy().astype(np.int64)
    n_zone = int(zs[-1]) + 1 if len(zs) else 0
    # merchant-wide fallback slices over all sites, masses m_q (Σ = 2^24 per merchant)
    sw = site_weights.with_columns(pl.col("merchant_id").cast(pl.UInt64)).sort("merchant_id", "legal_country_iso",
                                                                               "site_order")
    sw_m = midx(sw["merchant_id"], "site")
    has = np.unique(sw_m)
    f_off = np.concatenate([[0], np.cumsum(np.bincount(sw_m, minlength=nm)[has])]).astype(np.int64)
    f_pq, f_al = alias.build_alias_q32(f_off, sw["m_q"].cast(pl.Int64).to_numpy(), 24,
                                       code=f"{SEG}.S4.SITE_RESOLUTION_FAILED")
    m_fallback = np.full(nm, -1, np.int64)
    m_fallback[has] = n_zone + np.arange(len(has))
    z_off = np.concatenate([[0], np.cumsum(np.bincount(zs, minlength=n_zone))]).astype(np.int64)
    sl_off = np.concatenate([z_off, z_off[-1] + f_off[1:]]).astype(np.int64)

    def sid(df: pl.DataFrame) -> np.ndarray:
        return ids.site_ids(df["merchant_id"].to_numpy(), df["legal_country_iso"].cast(pl.String),
                            df["site_order"].to_numpy()) if df.height else np.zeros(0, np.uint64)

    slot_site_id = np.concatenate([sid(at), sid(sw)]).astype(np.uint64)
    slot_tz = np.concatenate([cache.tz_index(at["tz_group_id"].cast(pl.String).to_arrow(), tzc),
                              cache.tz_index(sw["tz_group_id"].cast(pl.String).to_arrow(), tzc)]).astype(np.int32)
    zone_slices = (at.select("merchant_id", pl.col("tz_group_id").cast(pl.String).alias("zone_representation"))
                   .with_columns(pl.Series("slice", zs)).unique("slice", keep="first", maintain_order=True))
    # edges, slot = edge_seq_index
    ed = edges.with_columns(pl.col("merchant_id").cast(pl.UInt64)).sort("merchant_id", "edge_seq_index")
    e_m = midx(ed["merchant_id"], "edge")
    m_edge_lo = _csr(e_m, nm)
    seq_ok = ed["edge_seq_index"].to_numpy() == np.arange(ed.height) - np.repeat(m_edge_lo[:-1], np.diff(m_edge_lo))
    if not np.all(seq_ok):
        raise _fail("EDGE_RESOLUTION_FAILED", "edge_seq_index is not 0..n-1 per merchant")
    e_tz = cache.tz_index(ed["tzid_operational"].cast(pl.String).to_arrow(), tzc)
    st = settlement.with_columns(pl.col("merchant_id").cast(pl.UInt64))
    m_settle = np.full(nm, -1, np.int32)
    if st.height:
        m_settle[midx(st["merchant_id"], "settlement")] = cache.tz_index(st["tzid_settlement"].cast(pl.String).to_arrow(), tzc)
    # audit membership: ids sorted within merchant
    ms = sw.select("merchant_id", pl.Series("site_id", slot_site_id[z_off[-1]:]),
                   pl.Series("tz", slot_tz[z_off[-1]:]), pl.Series("m", sw_m)).sort("m", "site_id")
    me = ed.select("edge_id", pl.Series("tz", e_tz), pl.Series("m", e_m)).sort("m", "edge_id")
    return RoutingPlan(
        mids, mode_codes(cls["virtual_mode"]), m_edge_lo[:-1].copy(), np.diff(m_edge_lo), m_settle, m_fallback,
        zone_slices, sl_off,
        np.concatenate([at["prob_q"].cast(pl.UInt32).to_numpy(), f_pq]).astype(np.uint32),
        np.concatenate([at["alias_slot"].cast(pl.UInt32).to_numpy(), f_al]).astype(np.uint32),
        slot_site_id, slot_tz,
        ed["prob_q"].cast(pl.UInt32).to_numpy(), ed["alias"].cast(pl.UInt32).to_numpy(),
        ed["edge_id"].cast(pl.UInt64).to_numpy(), e_tz.astype(np.int32),
        _csr(ms["m"].to_numpy(), nm), ms["site_id"].to_numpy().astype(np.uint64), ms["tz"].to_numpy().astype(np.int32),
        _csr(me["m"].to_numpy(), nm), me["edge_id"].to_numpy().astype(np.uint64), me["tz"].to_numpy().astype(np.int32),
        cache)


# ---------------------------------------------------------------- coarse plan (once per scenario)

@dataclass(frozen=True)
class CoarsePlan:
    zones: tuple[str, ...]        # dictionary of zone_representation (sorted)
    c_mid: np.ndarray             # u64
    c_zone: np.ndarray            # int32 code into zones
    c_chan: np.ndarray            # int32 code into CHANNELS
    c_m: np.ndarray               # int64 merchant index
    c_slice: np.ndarray           # int64 site slice, -1 none
    c_fallback: np.ndarray        # bool: the merchant-wide slice stands in for the zone
    zone_tz: np.ndarray           # int32 tz_index of the zone (-1 when not a cached tzid)
    keys: dict[str, np.ndarray]   # family -> (C, 3) streams


def coarse_plan(domain: pl.DataFrame, plan: RoutingPlan, derive: Derive) -> CoarsePlan:
    """Per domain row (merchant, zone, channel) in domain order: codes, site slice, S4 streams."""
    d = domain.with_columns(pl.col("merchant_id").cast(pl.UInt64), pl.col("zone_representation").cast(pl.String))
    m = plan.merchant_index(d["merchant_id"].to_numpy())
    if np.any(m < 0):
        raise _fail("SITE_RESOLUTION_FAILED", "λ merchant missing from virtual_classification",
                    merchant_id=int(d["merchant_id"][int(np.argmax(m < 0))]))
    zs = d.join(plan.zone_slices, on=["merchant_id", "zone_representation"], how="left",
                maintain_order="left")["slice"].fill_null(-1).to_numpy().astype(np.int64)
    fb = (zs < 0) & (plan.m_fallback[m] >= 0)
    c_slice = np.where(zs >= 0, zs, plan.m_fallback[m])
    zones = tuple(sorted(set(d["zone_representation"].to_list()), key=str.encode))
    zcode = d["zone_representation"].replace_strict({z: i for i, z in enumerate(zones)}, return_dtype=pl.Int32)
    cached = {t: i for i, t in enumerate(plan.cache.tzids)}
    zone_tz = np.array([cached.get(z, -1) for z in zones], np.int32)[zcode.to_numpy()]
    keys = coarse_key_strings(d)
    return CoarsePlan(zones, d["merchant_id"].to_numpy(), zcode.to_numpy(), channel_codes(d["channel_group"]), m,
                      c_slice, fb, zone_tz, {f: derive(f, keys) for f in FAMILIES})


def check_resolvable(cp: CoarsePlan, plan: RoutingPlan, c_with_arrivals: np.ndarray) -> None:
    """Named failures for keys with arrivals that cannot be routed (chapter 5B S4 failures)."""
    c = np.unique(c_with_arrivals)
    m = cp.c_m[c]
    mode = plan.m_mode[m]
    bad = c[(mode != K.MODE_VIRTUAL_ONLY) & (cp.c_slice[c] < 0)]
    if len(bad):
        raise _fail("SITE_RESOLUTION_FAILED", "merchant with physical arrivals and no sites",
                    merchant_id=int(cp.c_mid[bad[0]]), n_keys=len(bad))
    bad = c[(mode != K.MODE_NON_VIRTUAL) & ((plan.m_edge_n[m] < 1) | (plan.m_settle_tz[m] < 0))]
    if len(bad):
        raise _fail("EDGE_RESOLUTION_FAILED", "virtual merchant without edges or settlement tz",
                    merchant_id=int(cp.c_mid[bad[0]]), n_keys=len(bad))


# ---------------------------------------------------------------- expansion

def expand_batch(row_c, row_b, row_n, row_lam, cp: CoarsePlan, plan: RoutingPlan, grid: Grid, p_hybrid: float,
                 parallel: bool = True) -> tuple[dict[str, np.ndarray], dict]:
    """One merchant-contiguous batch of S3 rows (count > 0) -> arrival arrays + per-row counters.

    Rows come merchant-contiguous in S3 order (c, b) and are reordered to (merchant, bucket, zone,
    channel); arrivals of a (merchant, bucket) are
    chronological, and arrival_seq counts from 1 per merchant within the batch (callers never
    split a merchant)."""
    row_c, row_b = np.asarray(row_c, np.int64), np.asarray(row_b, np.int64)
    order = K.batch_order(cp.c_m[row_c], row_b, grid.H)
    rc = np.ascontiguousarray(row_c[order], np.int64)
    rb = np.ascontiguousarray(row_b[order], np.int64)
    rn = np.ascontiguousarray(row_n[order], np.int64)
    rl = np.ascontiguousarray(row_lam[order], np.float64)
    nr = len(rc)
    rm = cp.c_m[rc]
    new_g = np.ones(nr, bool)
    new_g[1:] = (rm[1:] != rm[:-1]) | (rb[1:] != rb[:-1])
    gstart = np.flatnonzero(new_g)
    grp_row_off = np.append(gstart, nr).astype(np.int64)
    out_off = np.concatenate([[0], np.cumsum(rn)]).astype(np.int64)
    grp_out_off = out_off[grp_row_off]
    gm = rm[gstart]
    new_m = np.ones(len(gstart), bool)
    new_m[1:] = gm[1:] != gm[:-1]
    m_first = grp_out_off[:-1][new_m][np.cumsum(new_m) - 1]
    grp_seq0 = (grp_out_off[:-1] - m_first + 1).astype(np.int64)
    n = int(out_off[-1])
    o = {"ts": np.empty(n, np.int64), "seq": np.empty(n, np.int64), "row": np.empty(n, np.int64),
         "mid": np.empty(n, np.uint64), "zone": np.empty(n, np.int32), "chan": np.empty(n, np.int32),
         "b": np.empty(n, np.int32), "lam": np.empty(n, np.float64), "virt": np.empty(n, np.bool_),
         "site": np.empty(n, np.uint64), "edge": np.empty(n, np.uint64), "tzp": np.empty(n, np.int32),
         "locp": np.empty(n, np.int64), "tzs": np.empty(n, np.int32), "locs": np.empty(n, np.int64)}
    rs = {k: np.zeros(nr, np.int64) for k in ("site_blocks", "edge_blocks", "virtual", "fallback", "status")}
    kt, ks, ke = (cp.keys[f] for f in FAMILIES)
    c = plan.cache
    args = (grp_row_off, grp_out_off, grp_seq0, rc, rb, rn, rl, kt, ks, ke,
            cp.c_mid, cp.c_zone, cp.c_chan, cp.c_m, cp.c_slice, cp.c_fallback,
            plan.m_mode, plan.m_edge_lo, plan.m_edge_n, plan.m_settle_tz,
            plan.sl_off, plan.sl_prob_q, plan.sl_alias, plan.slot_site_id, plan.slot_tz,
            plan.e_prob_q, plan.e_alias, plan.e_id, plan.e_tz,
            c.tz_start, c.trans_us, c.offset_us, np.int64(grid.h0_us), np.int64(grid.d_us), float(p_hybrid),
            o["ts"], o["seq"], o["row"], o["mid"], o["zone"], o["chan"], o["b"], o["lam"], o["virt"], o["site"],
            o["edge"], o["tzp"], o["locp"], o["tzs"], o["locs"],
            rs["site_blocks"], rs["edge_blocks"], rs["virtual"], rs["fallback"], rs["status"])
    (K.expand_parallel if parallel else K.expand_serial)(len(gstart), *args)
    if rs["status"].any():
        i = int(np.argmax(rs["status"]))
        raise _fail("RNG_ACCOUNTING_MISMATCH", "Philox counter wrapped (wrap_policy abort)",
                    merchant_id=int(cp.c_mid[rc[i]]), bucket_index=int(rb[i]))
    rs.update(c=rc, b=rb, n=rn, order=order)
    return o, rs


def _bitmap(valid: np.ndarray) -> pa.Buffer:
    return pa.py_buffer(np.packbits(valid, bitorder="little"))


def to_arrow(o: dict[str, np.ndarray], cp: CoarsePlan, plan: RoutingPlan, schema: pa.Schema) -> pa.Table:
    """Arrival arrays -> an `arrival_events_5B` table (no copies of the fixed-width columns)."""
    n = len(o["ts"])
    virt = o["virt"]
    nv = int(virt.sum())
    phys_bm, virt_bm = _bitmap(~virt), _bitmap(virt)
    tz_dict = pa.array(plan.cache.tzids, pa.string())

    def prim(t, a, bm=None, nulls=0):
        return pa.Array.from_buffers(t, n, [bm, pa.py_buffer(a)], null_count=nulls)

    def dic(codes, values, bm=None, nulls=0):
        return pa.DictionaryArray.from_arrays(prim(pa.int32(), codes, bm, nulls), values)

    cols = {
        "merchant_id": prim(pa.uint64(), o["mid"]),
        "arrival_seq": prim(pa.int64(), o["seq"]),
        "ts_utc": prim(pa.timestamp("us", "UTC"), o["ts"]),
        "bucket_index": prim(pa.int32(), o["b"]),
        "zone_representation": dic(o["zone"], pa.array(cp.zones, pa.string())),
        "channel_group": dic(o["chan"], pa.array(CHANNELS, pa.string())),
        "is_virtual": pa.array(virt, pa.bool_()),
        "site_id": prim(pa.uint64(), o["site"], phys_bm, nv),
        "edge_id": prim(pa.uint64(), o["edge"], virt_bm, n - nv),
        "tzid_primary": dic(o["tzp"], tz_dict),
        "ts_local_primary": prim(pa.timestamp("us"), o["locp"]),
        "tzid_operational": dic(o["tzp"], tz_dict, virt_bm, n - nv),
        "ts_local_operational": prim(pa.timestamp("us"), o["locp"], virt_bm, n - nv),
        "tzid_settlement": dic(o["tzs"], tz_dict, virt_bm, n - nv),
        "ts_local_settlement": prim(pa.timestamp("us"), o["locs"], virt_bm, n - nv),
        "lambda_realised": prim(pa.float64(), o["lam"]),
    }
    return pa.Table.from_arrays([cols[f.name] for f in schema], schema=schema)


def merchant_batches(row_c: np.ndarray, row_n: np.ndarray, c_m: np.ndarray, target: int) -> np.ndarray:
    """Cut points (row offsets) of merchant-contiguous batches of about `target` arrivals.

    Rows are in S3 order (c-major, so merchant-contiguous). A merchant starts a new batch when the
    arrivals before it cross a multiple of `target`: a batch holds < target + one merchant's total."""
    m = c_m[row_c]
    starts = np.flatnonzero(np.r_[True, m[1:] != m[:-1]])
    before = np.concatenate([[0], np.cumsum(row_n)])[starts]
    cut = np.r_[True, (before[1:] // target) != (before[:-1] // target)] if len(starts) else np.zeros(0, bool)
    return np.append(starts[cut], len(row_c)).astype(np.int64)


def _cat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return parts[0] if len(parts) == 1 else {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def stream_batches(chunks: Iterable[dict[str, np.ndarray]], c_m: np.ndarray, target: int
                   ) -> Iterator[dict[str, np.ndarray]]:
    """Chunks of S3 rows (dicts of equal-length arrays "c", "b", "n", "lam", in S3 order, count > 0),
    e.g. one per row group, regrouped into batches of whole merchants of about `target` arrivals.

    A merchant may straddle chunks, so the last merchant of what has arrived waits for the next
    chunk; the rows are checked unique and in (c, b) order across chunk boundaries."""
    pend: list[dict[str, np.ndarray]] = []
    pend_n = 0
    prev = (-1, -1)
    for ch in chunks:
        c, b = ch["c"], ch["b"]
        if not len(c):
            continue
        if np.any(ch["n"] <= 0):
            raise _fail("BUCKET_COUNT_MISMATCH", "S4 takes only S3 rows with count_N > 0")
        ok = (c[0] > prev[0]) or (c[0] == prev[0] and b[0] > prev[1])
        if not ok or not np.all((c[1:] > c[:-1]) | ((c[1:] == c[:-1]) & (b[1:] > b[:-1]))):
            raise _fail("BUCKET_COUNT_MISMATCH", "S3 rows must be unique and in (merchant, zone, channel, bucket) order")
        prev = (int(c[-1]), int(b[-1]))
        pend.append(ch)
        pend_n += int(ch["n"].sum())
        if pend_n < target:
            continue
        cat = _cat(pend)
        m = c_m[cat["c"]]
        chg = np.flatnonzero(m[1:] != m[:-1])
        last = int(chg[-1]) + 1 if len(chg) else 0          # the last merchant may go on in the next chunk
        head = {k: v[:last] for k, v in cat.items()}
        cuts = merchant_batches(head["c"], head["n"], c_m, target) if last else np.zeros(1, np.int64)
        for a, z in zip(cuts[:-1], cuts[1:]):
            yield {k: v[a:z] for k, v in head.items()}
        pend = [{k: v[last:] for k, v in cat.items()}]
        pend_n = int(pend[0]["n"].sum())
    if pend:
        cat = _cat(pend)
        cuts = merchant_batches(cat["c"], cat["n"], c_m, target)
        for a, z in zip(cuts[:-1], cuts[1:]):
            yield {k: v[a:z] for k, v in cat.items()}


def realise_stream(chunks: Iterable[dict[str, np.ndarray]], cp: CoarsePlan, plan: RoutingPlan, grid: Grid,
                   routing_policy: dict, batch_target: int, sink: Callable[[pa.Table, dict], None],
                   parallel: bool = False) -> tuple[dict, rng.RngTrace]:
    """Stream S4 for one scenario: chunks of S3 rows (see `stream_batches`) -> `sink(table, batch)` per
    batch of whole merchants, `batch` holding its S3 rows ("c", "b", "n", "lam") and "virtual" arrivals
    per row. The next batch is read and expanded on a worker thread (numba and Parquet decoding release
    the GIL) while the caller writes this one, so S3 is never held whole: memory is a few batches.
    The kernel runs on one thread by default: the Parquet encoder (one thread, ~2x the kernel's cost
    per arrival) is the bottleneck, and a parallel kernel would take cores from it.

    Returns (counts for the run report, RngTrace with the three S4 families)."""
    schema = arrow_schema("arrival_events_5B")
    batches = stream_batches(chunks, cp.c_m, int(batch_target))
    tot = {"arrivals": 0, "virtual": 0, "fallback_arrivals": 0, "batches": 0,
           "blocks": {f: 0 for f in FAMILIES}, "events": {f: 0 for f in FAMILIES}}
    first = {}
    last = {}

    def work():
        bt = next(batches, None)
        if bt is None:
            return None
        check_resolvable(cp, plan, bt["c"])
        o, rs = expand_batch(bt["c"], bt["b"], bt["n"], bt["lam"], cp, plan, grid,
                             routing_policy["p_virtual_hybrid"], parallel)
        virtual = np.zeros(len(bt["c"]), np.int64)
        virtual[rs["order"]] = rs["virtual"]
        return {**bt, "virtual": virtual}, to_arrow(o, cp, plan, schema), rs

    with ThreadPoolExecutor(1) as ex:
        fut = ex.submit(work)
        while (res := fut.result()) is not None:
            fut = ex.submit(work)
            bt, table, rs = res
            sink(table, bt)
            tot["batches"] += 1
            tot["arrivals"] += table.num_rows
            tot["virtual"] += int(rs["virtual"].sum())
            tot["fallback_arrivals"] += int(rs["fallback"].sum())
            for f, blocks in zip(FAMILIES, (rs["n"], rs["site_blocks"], rs["edge_blocks"])):
                used = np.flatnonzero(blocks > 0)
                tot["blocks"][f] += int(blocks.sum())
                tot["events"][f] += len(used)
                if len(used):
                    # counters of the first/last consuming row's stream (row granularity: + (b << 32))
                    key = cp.keys[f]
                    i0, i1 = int(used[0]), int(used[-1])
                    first.setdefault(f, _ctr(key, rs["c"][i0], rs["b"][i0], 0))
                    last[f] = _ctr(key, rs["c"][i1], rs["b"][i1], int(rs["n"][i1]) - 1)
    trace = rng.RngTrace()
    for f, d in zip(FAMILIES, (1, 2, 1)):
        trace.add(f"{SEG}.{f}", tot["events"][f], tot["blocks"][f] * d, tot["blocks"][f], first.get(f), last.get(f))
    return tot, trace


def realise_arrivals(row_c, row_b, row_n, row_lam, cp: CoarsePlan, plan: RoutingPlan, grid: Grid,
                     routing_policy: dict, batch_target: int, sink: Callable[[pa.Table], None],
                     parallel: bool = False) -> tuple[dict, rng.RngTrace, np.ndarray]:
    """`realise_stream` over S3 rows held in memory (S3 order, count_N > 0): `sink(table)` per batch.

    Returns (counts, RngTrace, per-input-row virtual arrivals for s4_arrival_summary_5B)."""
    chunk = {"c": np.asarray(row_c, np.int64), "b": np.asarray(row_b, np.int64),
             "n": np.asarray(row_n, np.int64), "lam": np.asarray(row_lam, np.float64)}
    virtual: list[np.ndarray] = []

    def keep(table: pa.Table, batch: dict) -> None:
        virtual.append(batch["virtual"])
        sink(table)
    tot, trace = realise_stream([chunk], cp, plan, grid, routing_policy, batch_target, keep, parallel)
    return tot, trace, (np.concatenate(virtual) if virtual else np.zeros(0, np.int64))


def _ctr(keys: np.ndarray, c: int, b: int, k: int) -> tuple[int, int]:
    v = ((int(keys[c, 1]) << 64) | int(keys[c, 2])) + (int(b) << 32) + int(k)
    return (v >> 64) & ((1 << 64) - 1), v & ((1 << 64) - 1)
