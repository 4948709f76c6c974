"""Global ids (INTERFACES §0). The only place site ids are computed."""
from __future__ import annotations

import hashlib

import numpy as np

from .sha256 import sha256_rows, words_to_u64

_SEP = b"\x1f"


def site_id(merchant_id: int, iso: str, site_order: int) -> int:
    """BE64(SHA256("fraudworld.site" 0x1F merchant_id 0x1F iso 0x1F site_order)[24:32]).

    Integers enter as their decimal ASCII form.
    """
    msg = _SEP.join((b"fraudworld.site", str(int(merchant_id)).encode(), iso.encode(),
                     str(int(site_order)).encode()))
    return int.from_bytes(hashlib.sha256(msg).digest()[24:32], "big")


def site_ids(merchant_id: np.ndarray, iso, site_order: np.ndarray) -> np.ndarray:
    """Vector form: one SHA-256 per site in a numba kernel (ids are made once per site)."""
    import polars as pl
    msg = pl.DataFrame({"m": merchant_id, "c": pl.Series(iso, dtype=pl.String), "s": site_order}).select(
        pl.format("fraudworld.site\x1f{}\x1f{}\x1f{}", "m", "c", "s")).to_series().to_arrow()
    return words_to_u64(sha256_rows(msg), 3)
