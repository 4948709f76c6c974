"""2B.S0: verify 1B and 2A, check site_timezones covers site_locations, seal inputs (RNG-free)."""
from __future__ import annotations

from engine.core import datasets
from engine.core.context import RunContext
from engine.core.errors import EngineFailure
from engine.core.gate import run_gate

from .common import load_policies, report_path, state_report

CODE = "2B.S0"
KEY = ["merchant_id", "legal_country_iso", "site_order"]


def run(ctx: RunContext) -> None:
    rep = state_report("S0")
    load_policies(ctx, "S0")
    upstream = run_gate(ctx, CODE)
    loc = datasets.read(ctx, "site_locations", CODE).select(KEY).sort(KEY)
    tz = datasets.read(ctx, "site_timezones", CODE).select(KEY).sort(KEY)
    if not loc.equals(tz):
        raise EngineFailure(f"{CODE}.SITE_KEYSET_MISMATCH", "site_timezones and site_locations hold different sites; "
                            "rebuild 2A", {"site_locations": loc.height, "site_timezones": tz.height})
    rep.count(upstream_verified=len(upstream), sites=loc.height)
    rep.rng(None)
    rep.write(report_path(ctx, "S0"))
