"""CSR layout: rows grouped by an owner id, with offsets per owner, for numba kernels."""
from __future__ import annotations

import numpy as np


def offsets(owner_ids: np.ndarray, row_owner: np.ndarray) -> np.ndarray:
    """offsets[i]..offsets[i+1] are the rows of owner_ids[i].

    Both arrays are sorted ascending and every row's owner is in owner_ids.
    """
    starts = np.searchsorted(row_owner, owner_ids, side="left")
    return np.append(starts, len(row_owner)).astype(np.int64)
