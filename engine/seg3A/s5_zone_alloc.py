"""3A.S5: zone_alloc (escalated pairs only, zero counts kept; hand-off) and zone_alloc_universe_hash.json
(RNG-free). The digests are of the exact bytes: policy files as sealed, datasets as published."""
from __future__ import annotations

from engine.core import datasets
from engine.core.context import RunContext
from engine.core.errors import EngineFailure
from engine.core.identity import dumps, sha256_file
from engine.core.publish import publish_text

from . import egress
from .common import PAIR, load_policies, report_path, state_report, versions

CODE = "3A.S5"


def digests(ctx: RunContext, zone_alloc_dir) -> dict[str, str]:
    """The five universe-hash components, from the declared files and the published zone_alloc."""
    return {"zone_alpha_digest": egress.parquet_digest(ctx.io.input("s2_country_zone_priors")),
            "theta_digest": sha256_file(ctx.io.policy("3A", "zone_mixture_policy")),
            "zone_floor_digest": sha256_file(ctx.io.policy("3A", "zone_floor_policy")),
            "day_effect_digest": sha256_file(ctx.io.policy("2B", "day_effects")),
            "zone_alloc_parquet_digest": egress.parquet_digest(zone_alloc_dir)}


def run(ctx: RunContext) -> None:
    rep = state_report("S5")
    pol = load_policies(ctx, "S5")
    q = datasets.read(ctx, "s1_escalation_queue", CODE)
    sh = datasets.read(ctx, "s3_zone_shares", CODE)
    k = datasets.read(ctx, "s4_zone_counts", CODE)
    datasets.read_table(ctx, "s2_country_zone_priors", CODE)        # verified against its manifest before hashing
    za = egress.zone_alloc(k, q, sh, versions(ctx, pol, "S5"))
    bad = za.filter((za["zone_site_count_sum"] != za["site_count"]) | za["site_count"].is_null())
    if bad.height or za.height != k.height:
        raise EngineFailure(f"{CODE}.COUNT_MISMATCH_S4", "zone_alloc counts do not match S4 and the pair's site count",
                            {"merchant_id": bad["merchant_id"][0] if bad.height else None})
    datasets.publish(ctx, za, "zone_alloc", CODE)
    doc = egress.universe_hash(digests(ctx, ctx.io.output("zone_alloc")))
    publish_text(dumps(doc), ctx.io.output("universe_hash"), CODE, overwrite=True)
    rep.count(rows=za.height, pairs=za.select(PAIR).n_unique(), nonzero=int((za["zone_site_count"] > 0).sum()))
    rep.data["routing_universe_hash"] = doc["routing_universe_hash"]
    rep.rng(None)
    rep.write(report_path(ctx, "S5"))
