"""Rows keyed by (merchant, zone, channel, bucket) -- 5A's λ surface, 5B's S3 counts -- read from
Arrow batches into flat numpy columns, and mapped onto the scenario's domain.

The tables are large (~5e7 rows a scenario on `full`), so they never become Polars frames with
string columns: zone and channel stay integer codes (zones in byte order, channels in
`CHANNELS` order), merchants stay u64. Each row group carries its own dictionary (the writer
renumbers by first appearance), so codes are remapped per row group through the small
dictionaries -- never per row in Python.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from engine.core.errors import EngineFailure

from .policies import CHANNELS

_CHAN_RANK = np.argsort(np.argsort([c.encode() for c in CHANNELS])).astype(np.int64)   # byte order of CHANNELS


@dataclass
class KeyedRows:
    mid: np.ndarray          # u64
    zone: np.ndarray         # int32 code into `zones`
    chan: np.ndarray         # int32 code into CHANNELS
    bucket: np.ndarray       # int64
    values: dict[str, np.ndarray]
    zones: tuple[str, ...]   # sorted by bytes

    def subset(self, keep: np.ndarray) -> KeyedRows:
        return KeyedRows(self.mid[keep], self.zone[keep], self.chan[keep], self.bucket[keep],
                         {k: v[keep] for k, v in self.values.items()}, self.zones)


def vocab_codes(col: pa.ChunkedArray, vocab: dict[str, int]) -> np.ndarray:
    """int32 codes of a string/dictionary column into `vocab` (grown in first-seen order)."""
    out = []
    for ch in col.chunks:
        d = ch if pa.types.is_dictionary(ch.type) else pc.dictionary_encode(ch)
        if d.null_count:
            raise ValueError("null key")
        local = np.array([vocab.setdefault(v, len(vocab)) for v in d.dictionary.to_pylist()], np.int32)
        out.append(local[d.indices.to_numpy(zero_copy_only=False)] if len(local) else np.zeros(0, np.int32))
    return np.concatenate(out) if out else np.zeros(0, np.int32)


def read_keyed(batches: Iterable[pa.Table], bucket_col: str, value_cols: tuple[str, ...], code: str,
               keep: str | None = None) -> KeyedRows:
    """Concatenate keyed batches into flat columns; with `keep`, only rows whose `keep` column > 0."""
    zv: dict[str, int] = {}
    cv = {c: i for i, c in enumerate(CHANNELS)}
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("mid", "zone", "chan", "bucket", *value_cols)}
    for t in batches:
        if keep is not None:
            t = t.filter(pc.greater(t.column(keep), 0))
        try:
            z = vocab_codes(t.column("zone_representation"), zv)
            c = vocab_codes(t.column("channel_group"), cv)
        except ValueError:
            raise EngineFailure(code, "null merchant zone or channel in a keyed row", {}) from None
        if len(cv) > len(CHANNELS):
            raise EngineFailure(code, "channel_group outside the 5A vocabulary",
                                {"channel_group": ",".join(list(cv)[len(CHANNELS):])})
        cols["mid"].append(t.column("merchant_id").to_numpy().astype(np.uint64, copy=False))
        cols["zone"].append(z)
        cols["chan"].append(c)
        cols["bucket"].append(t.column(bucket_col).to_numpy().astype(np.int64, copy=False))
        for v in value_cols:
            cols[v].append(t.column(v).to_numpy())
    flat = {k: (np.concatenate(v) if v else np.zeros(0)) for k, v in cols.items()}
    zones = tuple(sorted(zv, key=str.encode))
    remap = np.zeros(len(zv), np.int32)
    for i, zname in enumerate(zones):
        remap[zv[zname]] = i
    zone = remap[flat["zone"].astype(np.int64)] if len(zv) else np.zeros(0, np.int32)
    return KeyedRows(flat["mid"].astype(np.uint64, copy=False), zone.astype(np.int32, copy=False),
                     flat["chan"].astype(np.int32, copy=False), flat["bucket"].astype(np.int64, copy=False),
                     {v: flat[v] for v in value_cols}, zones)


def _sorted_strictly(r: KeyedRows) -> bool:
    m, z, c, b = r.mid, r.zone, _CHAN_RANK[r.chan], r.bucket
    if len(m) < 2:
        return True
    em, ez, ec = m[1:] == m[:-1], z[1:] == z[:-1], c[1:] == c[:-1]
    gt = (m[1:] > m[:-1]) | (em & ((z[1:] > z[:-1]) | (ez & ((c[1:] > c[:-1]) | (ec & (b[1:] > b[:-1]))))))
    return bool(gt.all())


def domain_of(r: KeyedRows, code: str) -> tuple[pl.DataFrame, np.ndarray]:
    """(domain in row order: merchant_id, zone_representation, channel_group; row_c int64).

    Rows must be strictly in (merchant, zone, channel, bucket) order, as 5A and S3 write them."""
    if not _sorted_strictly(r):
        raise EngineFailure(code, "rows are not unique and sorted by (merchant, zone, channel, bucket); rebuild the "
                            "producing segment", {})
    n = len(r.mid)
    start = np.ones(n, bool)
    if n > 1:
        start[1:] = (r.mid[1:] != r.mid[:-1]) | (r.zone[1:] != r.zone[:-1]) | (r.chan[1:] != r.chan[:-1])
    row_c = np.cumsum(start) - 1
    s = np.flatnonzero(start)
    dom = pl.DataFrame({"merchant_id": pl.Series(r.mid[s], dtype=pl.UInt64),
                        "zone_representation": pl.Series(np.array(r.zones, dtype=object)[r.zone[s]] if n else [],
                                                         dtype=pl.String),
                        "channel_group": pl.Series(np.array(CHANNELS, dtype=object)[r.chan[s]] if n else [],
                                                   dtype=pl.String)})
    return dom, row_c.astype(np.int64)


class DomainIndex:
    """A scenario's domain (merchant, zone, channel; sorted, unique) as integer keys, built once, so that
    keyed rows streamed one row group at a time map onto it cheaply (`rows`)."""

    def __init__(self, domain: pl.DataFrame, code: str):
        d_mid = domain["merchant_id"].cast(pl.UInt64).to_numpy()
        self.um = np.unique(d_mid)
        self.zones = {z: i for i, z in enumerate(sorted(set(domain["zone_representation"].to_list()), key=str.encode))}
        chan = {c: i for i, c in enumerate(CHANNELS)}
        self.d_key = ((np.searchsorted(self.um, d_mid) * len(self.zones)
                       + domain["zone_representation"].replace_strict(self.zones, return_dtype=pl.Int64).to_numpy()) * 3
                      + _CHAN_RANK[domain["channel_group"].replace_strict(chan, return_dtype=pl.Int64).to_numpy()])
        if len(self.d_key) > 1 and np.any(np.diff(self.d_key) <= 0):
            raise EngineFailure(code, "domain is not unique and sorted by (merchant, zone, channel)", {})

    def rows(self, r: KeyedRows, code: str) -> np.ndarray:
        """row_c of each keyed row; a row whose key is not in the domain is a named failure."""
        um, d_key = self.um, self.d_key
        zmap = np.array([self.zones.get(z, -1) for z in r.zones], np.int64)
        # rows come in runs of one key (tables are sorted by key): look up each run once
        n = len(r.mid)
        start = np.ones(n, bool)
        if n > 1:
            start[1:] = (r.mid[1:] != r.mid[:-1]) | (r.zone[1:] != r.zone[:-1]) | (r.chan[1:] != r.chan[:-1])
        s = np.flatnonzero(start)
        z = zmap[r.zone[s]] if len(zmap) else np.zeros(len(s), np.int64)
        mi = np.minimum(np.searchsorted(um, r.mid[s]), max(len(um) - 1, 0))
        r_key = (mi * len(self.zones) + np.maximum(z, 0)) * 3 + _CHAN_RANK[r.chan[s]]
        c = np.minimum(np.searchsorted(d_key, r_key), max(len(d_key) - 1, 0))
        bad = ((um[mi] != r.mid[s]) if len(um) else np.ones(len(s), bool)) | (z < 0)
        bad = bad | (d_key[c] != r_key) if len(d_key) else bad
        if np.any(bad):
            i = int(s[np.argmax(bad)])
            raise EngineFailure(code, "row key outside the scenario's domain (s1_grouping_5B)",
                                {"merchant_id": int(r.mid[i]), "zone": r.zones[r.zone[i]], "n_keys": int(bad.sum())})
        return np.repeat(c.astype(np.int64), np.diff(np.append(s, n)))


def rows_on_domain(r: KeyedRows, domain: pl.DataFrame, code: str) -> np.ndarray:
    """row_c of each keyed row in `domain` (sorted by merchant, zone, channel); a row whose key is not
    in the domain is a named failure."""
    return DomainIndex(domain, code).rows(r, code)
