"""Engine failures: one exception type, codes of the form `<SEG>.<STATE>.<NAME>`."""
from __future__ import annotations

import re
from typing import Any

_CODE = re.compile(r"^[0-9A-Z]{2,3}\.S[0-9]+\.[A-Z0-9_]+$|^(CORE|USER|TEST)\.[A-Z0-9_]+\.[A-Z0-9_]+$")


class EngineFailure(Exception):
    """A failure with a stable code, a human message and the offending file/key."""

    def __init__(self, code: str, message: str, context: dict[str, Any] | None = None):
        if not _CODE.match(code):
            raise ValueError(f"malformed failure code {code!r}")
        self.code = code
        self.message = message
        self.context = dict(context or {})
        super().__init__(self.line())

    def line(self) -> str:
        """One line: code, message, then the context as key=value."""
        ctx = " ".join(f"{k}={v}" for k, v in self.context.items())
        return f"{self.code}: {self.message}" + (f" [{ctx}]" if ctx else "")
