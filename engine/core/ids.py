"""Global ids (INTERFACES §0). The only place site ids are computed."""
from __future__ import annotations

import hashlib

import numpy as np

_SEP = b"\x1f"


def site_id(merchant_id: int, iso: str, site_order: int) -> int:
    """BE64(SHA256("fraudworld.site" 0x1F merchant_id 0x1F iso 0x1F site_order)[24:32]).

    Integers enter as their decimal ASCII form.
    """
    msg = _SEP.join((b"fraudworld.site", str(int(merchant_id)).encode(), iso.encode(),
                     str(int(site_order)).encode()))
    return int.from_bytes(hashlib.sha256(msg).digest()[24:32], "big")


def site_ids(merchant_id: np.ndarray, iso: list[str], site_order: np.ndarray) -> np.ndarray:
    """Vector form. One SHA-256 per site: ids are made once per site, never per event."""
    sha = hashlib.sha256
    out = np.fromiter(
        (int.from_bytes(sha(b"fraudworld.site\x1f%d\x1f%s\x1f%d" % (m, c.encode(), s)).digest()[24:32], "big")
         for m, c, s in zip(merchant_id.tolist(), iso, site_order.tolist())),
        dtype=np.uint64, count=len(iso))
    return out
