"""1B.S0: verify 1A's gate, then seal the inputs 1B reads (RNG-free)."""
from __future__ import annotations

from engine.core import hashgate
from engine.core.context import RunContext
from engine.core.errors import EngineFailure
from engine.core.identity import dumps, sha256_file
from engine.core.publish import publish_text

from .common import POLICIES, SEG, policy, report_path, state_report

CODE = "1B.S0"
REFERENCE = ("countries", "cities", "country_geometry")


def run(ctx: RunContext) -> None:
    rep = state_report("S0")
    digest = hashgate.verify(ctx.results / "1A", CODE)        # no PASS, no read
    for name in POLICIES:
        policy(ctx, name, "S0")
    sealed = []
    for name in POLICIES:
        f = ctx.cfg(SEG, f"{name}.yaml")
        sealed.append({"asset_id": f"policy_{name}", "path": f"config/{SEG}/{name}.yaml", "sha256_hex": sha256_file(f),
                       "version_tag": ctx.receipt["parameter_hash"][:12]})
    for name in REFERENCE:
        f = ctx.results / "reference" / f"{name}.csv"
        if not f.exists():
            raise EngineFailure(f"{CODE}.REFERENCE_MISSING", "reference table missing; run the reference_tables rule",
                                {"file": str(f)})
        sealed.append({"asset_id": f"ref_{name}", "path": f"results/reference/{name}.csv", "sha256_hex": sha256_file(f),
                       "version_tag": ",".join(f"{k}={v}" for k, v in ctx.receipt["reference_packages"].items())})
    cat_dir = ctx.results / "1A" / "outlet_catalogue"
    for f in sorted(cat_dir.glob("*.parquet")):
        sealed.append({"asset_id": f"1A.outlet_catalogue/{f.name}", "path": f.relative_to(ctx.results.parent).as_posix(),
                       "sha256_hex": sha256_file(f), "version_tag": digest[:12]})
    sealed.sort(key=lambda r: r["asset_id"])
    publish_text(dumps({"segment": SEG, "inputs": sealed}), ctx.results / SEG / "S0" / "sealed_inputs.json",
                 CODE, overwrite=True)
    publish_text(dumps({"segment": SEG, "identity": ctx.identity,
                        "upstream": [{"segment": "1A", "flag_path": "results/1A/_passed.flag", "flag_sha256_hex": digest}]}),
                 ctx.results / SEG / "S0" / "gate_receipt.json", CODE, overwrite=True)
    rep.count(sealed_inputs=len(sealed))
    rep.rng(None)
    rep.write(report_path(ctx, "S0"))
