"""Keep freed memory in the process for reuse instead of handing it back to the OS.

Streaming states allocate and free ~100 MB per batch (kernel outputs, Parquet pages). Returned to
the OS, every reuse costs a fresh page: a minor fault plus zeroing, ~20-30 µs a page on this VM.
Measured on 5B.S4 `full` (96M arrivals): 380k faults and 4 s of system time with the allocators'
defaults, 131k faults and 1.3 s with both settings below. Peak RSS does not grow: the memory kept
is memory the state already used.

- Arrow's allocator (mimalloc in pyarrow wheels) purges freed pages after 10 ms; the option is read
  from the environment when mimalloc first needs it, so `engine/__init__.py` sets it on import.
- glibc (numpy's allocator): a fixed mmap threshold of 32 MiB (the default one adapts and maps
  each large array afresh) and no trimming of the heap below 2 GiB.
"""
from __future__ import annotations

import ctypes
import os

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def prefer_reuse_env() -> None:
    os.environ.setdefault("MIMALLOC_PURGE_DELAY", "-1")


def keep_freed_memory() -> bool:
    """Set the glibc options (no-op elsewhere); True when they took."""
    prefer_reuse_env()
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):                     # not glibc (macOS, musl): allocator defaults
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, 32 << 20)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
