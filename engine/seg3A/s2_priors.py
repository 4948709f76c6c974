"""3A.S2: country-zone Dirichlet priors, zone floors applied (RNG-free, seed-independent)."""
from __future__ import annotations

from engine.core import datasets
from engine.core.context import RunContext

from . import priors
from .common import load_policies, pack, report_path, state_report

CODE = "3A.S2"


def run(ctx: RunContext) -> None:
    rep = state_report("S2")
    pol = load_policies(ctx, "S2")
    s2 = priors.country_zone_priors(pack(pol, "S2"), priors.floor_frame(pol["zone_floor_policy"]),
                                    str(pol["country_zone_alphas"]["version"]),
                                    str(pol["zone_floor_policy"]["version"]), CODE)
    datasets.publish(ctx, s2, "s2_country_zone_priors", CODE)
    rep.count(rows=s2.height, countries=s2["country_iso"].n_unique(), floors_applied=int(s2["floor_applied"].sum()))
    rep.rng(None)
    rep.write(report_path(ctx, "S2"))
