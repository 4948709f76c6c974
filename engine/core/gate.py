"""The S0 gate, once for every segment (DESIGN §1, §6): verify upstream flags, validate
policies, seal every declared input as {path, sha256}, write the gate receipt.

Later states of the segment compare the upstream digests recorded here with the flags they
read through (engine.core.datasets), so data the gate never saw is never read.
"""
from __future__ import annotations

from pathlib import Path

from . import contracts, datasets, hashgate
from .context import RunContext
from .errors import EngineFailure
from .identity import dumps, sha256_file
from .publish import MANIFEST, publish_text


def _logical(ctx: RunContext, f: Path) -> str:
    f = Path(f)
    try:
        return "results/" + f.relative_to(ctx.results).as_posix()
    except ValueError:
        # config/ under the checkout, or beside results/ on a shared volume (Kubernetes: jobs get volume paths)
        base = next((b for b in (ctx.root, ctx.results.parent) if f.is_relative_to(b)), None)
        return f.relative_to(base).as_posix() if base is not None else str(f)


def seal_inputs(ctx: RunContext, code: str) -> list[dict]:
    """asset id, logical path and SHA-256 of every file the state declares (flags excluded)."""
    rows = []
    for name in sorted(ctx.io.inputs):
        if name == "receipt" or name.startswith("flag_"):
            continue
        d = ctx.io.input(name)
        if not d.exists():
            raise EngineFailure(f"{code}.INPUT_MISSING", "declared input is missing; run its producing rule",
                                {"path": str(d)})
        files = [d] if d.is_file() else sorted(f for f in d.rglob("*") if f.is_file() and f.name != MANIFEST)
        for f in files:
            aid = name if d.is_file() else f"{name}/{f.relative_to(d).as_posix()}"
            rows.append({"asset_id": aid, "path": _logical(ctx, f), "sha256_hex": sha256_file(f)})
    return rows


def run_gate(ctx: RunContext, code: str, extra: dict | None = None) -> dict[str, str]:
    """Verify every upstream flag in full, check policies and inputs, write sealed_inputs.json and
    gate_receipt.json. Returns {upstream segment: flag digest}."""
    seg = ctx.io.segment
    upstream = {}
    for name in sorted(ctx.io.inputs):
        if name.startswith("flag_"):
            up = name[len("flag_"):]
            upstream[up] = hashgate.verify(ctx.results / up, code, egress=False)   # no PASS, no read;
            # the files this segment reads are checked against the sealed checksums below
    for name, p in sorted(ctx.io.inputs.items()):
        if name.startswith("policy_"):
            _, s, pol = name.split("_", 2)
            contracts.load_policy(p, s, pol, code)
        elif name.startswith("ref_"):
            datasets.check_reference(ctx, name[len("ref_"):], code)
        elif name in contracts.dictionary() and contracts.entry(name)["segment"] != seg:
            datasets.check_upstream_files(ctx, name, code, upstream)
    sealed = seal_inputs(ctx, code)
    publish_text(dumps({"segment": seg, "inputs": sealed}), ctx.io.output("sealed"), code, overwrite=True)
    ups = [{"segment": s, "flag_path": f"results/{s}/{hashgate.FLAG}", "flag_sha256_hex": d}
           for s, d in sorted(upstream.items())]
    publish_text(dumps({"segment": seg, "identity": ctx.identity, "upstream": ups, **(extra or {})}),
                 ctx.io.output("gate"), code, overwrite=True)
    return upstream
