"""Progress logging for long loops: elapsed, rate and ETA, at most every `every_s` seconds."""
from __future__ import annotations

import logging
import time


class Progress:
    def __init__(self, label: str, total: int, unit: str = "rows",
                 logger: logging.Logger | None = None, every_s: float = 5.0):
        self.label, self.total, self.unit = label, max(int(total), 0), unit
        self.log = logger or logging.getLogger("engine")
        self.every_s = every_s
        self.done = 0
        self.t0 = self._last = time.monotonic()

    def update(self, n: int) -> None:
        self.done += int(n)
        now = time.monotonic()
        if now - self._last >= self.every_s or self.done >= self.total:
            self._last = now
            self.log.info(self.line(now))

    def line(self, now: float | None = None) -> str:
        el = (now or time.monotonic()) - self.t0
        rate = self.done / el if el > 0 else 0.0
        left = (self.total - self.done) / rate if rate > 0 else float("nan")
        pct = 100.0 * self.done / self.total if self.total else 100.0
        return (f"{self.label}: {self.done:,}/{self.total:,} {self.unit} ({pct:.1f}%) "
                f"elapsed {el:.1f}s rate {rate:,.0f}/s eta {left:.1f}s")

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.t0
