"""Policy loading for the 2A/2B logic: schema validation (engine.core.contracts.load_policy)
plus the one thing JSON-Schema cannot say: NaN passes `minimum`/`maximum` (every comparison with
NaN is false), so every float in the document is checked finite here (DESIGN §7)."""
from __future__ import annotations

import math
from pathlib import Path

from .contracts import load_policy
from .errors import EngineFailure


def _nonfinite(doc, path=""):
    if isinstance(doc, float) and not math.isfinite(doc):
        return path or "<root>"
    if isinstance(doc, dict):
        for k, v in doc.items():
            bad = _nonfinite(v, f"{path}.{k}" if path else str(k))
            if bad:
                return bad
    if isinstance(doc, list):
        for i, v in enumerate(doc):
            bad = _nonfinite(v, f"{path}.{i}" if path else str(i))
            if bad:
                return bad
    return None


def load_finite_policy(path: Path, segment: str, name: str, code_prefix: str) -> dict:
    doc = load_policy(Path(path), segment, name, code_prefix)
    bad = _nonfinite(doc)
    if bad:
        raise EngineFailure(f"{code_prefix}.INPUT_INVALID", f"field '{bad}': NaN or infinity is not allowed; "
                            "fix it in the policy file", {"file": str(path), "field": bad})
    return doc


def invalid(code_prefix: str, path: Path, field: str, message: str) -> EngineFailure:
    """A semantic policy error (one the schema cannot express), named like a schema error."""
    return EngineFailure(f"{code_prefix}.INPUT_INVALID", f"field '{field}': {message}; fix it in the policy file",
                         {"file": str(path), "field": field})
