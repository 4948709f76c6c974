"""Run states in order without Snakemake (tests, benchmarks). Snakemake is the user path."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import yaml

from engine.core import receipt
from engine.core.context import ROOT, RunContext, begin_state
from engine.refdata import build as refdata
from engine.seg1A import (
    s0_universe,
    s1_hurdle,
    s2_nb_outlets,
    s3_candidates,
    s4_ztp,
    s5_currency,
    s6_selection,
    s7_allocation,
    s8_catalogue,
    s9_validation,
)
from engine.seg1B import (
    s0_gate,
    s1_tiles,
    s2_weights,
    s3_requirements,
    s4_alloc,
    s5_assign,
    s6_jitter,
    s7_synthesis,
    s8_egress,
)
from engine.seg1B import s9_validation as s9_validation_1B
from engine.seg2A import s0_gate as s0_gate_2A
from engine.seg2A import s1_tz_lookup, s2_site_timezones, s3_tz_cache, s4_legality
from engine.seg2A import s5_validation as s5_validation_2A
from engine.seg2B import s0_gate as s0_gate_2B
from engine.seg2B import s1_site_weights, s2_alias, s3_day_effects, s4_group_weights, s5_router_audit, s7_validation
from engine.seg3A import s0_gate as s0_gate_3A
from engine.seg3A import s1_escalation, s2_priors, s3_zone_shares, s4_zone_counts, s5_zone_alloc, s6_validation
from engine.seg3B import s0_gate as s0_gate_3B
from engine.seg3B import s1_virtual, s2_edges, s3_alias, s4_validation
from engine.seg5A import s5_validation as s5_validation_5A  # noqa: E402
from engine.seg5A import states as states_5A  # noqa: E402
from engine.seg5B import s5_validation as s5_validation_5B  # noqa: E402
from engine.seg5B import states as states_5B  # noqa: E402

STATES = {
    "1A": [("S0", s0_universe.run), ("S1", s1_hurdle.run), ("S2", s2_nb_outlets.run),
           ("S3", s3_candidates.run), ("S4", s4_ztp.run), ("S5", s5_currency.run),
           ("S6", s6_selection.run), ("S7", s7_allocation.run), ("S8", s8_catalogue.run),
           ("S9", s9_validation.run)],
    "1B": [("S0", s0_gate.run), ("S1", s1_tiles.run), ("S2", s2_weights.run), ("S3", s3_requirements.run),
           ("S4", s4_alloc.run), ("S5", s5_assign.run), ("S6", s6_jitter.run), ("S7", s7_synthesis.run),
           ("S8", s8_egress.run), ("S9", s9_validation_1B.run)],
    "2A": [("S0", s0_gate_2A.run), ("S1", s1_tz_lookup.run), ("S2", s2_site_timezones.run), ("S3", s3_tz_cache.run),
           ("S4", s4_legality.run), ("S5", s5_validation_2A.run)],
    "2B": [("S0", s0_gate_2B.run), ("S1", s1_site_weights.run), ("S2", s2_alias.run), ("S3", s3_day_effects.run),
           ("S4", s4_group_weights.run), ("S5", s5_router_audit.run), ("S7", s7_validation.run)],
    "3A": [("S0", s0_gate_3A.run), ("S1", s1_escalation.run), ("S2", s2_priors.run), ("S3", s3_zone_shares.run),
           ("S4", s4_zone_counts.run), ("S5", s5_zone_alloc.run), ("S6", s6_validation.run)],
    "3B": [("S0", s0_gate_3B.run), ("S1", s1_virtual.run), ("S2", s2_edges.run), ("S3", s3_alias.run),
           ("S4", s4_validation.run)],
    "5A": [("S0", states_5A.s0_gate), ("S1", states_5A.s1_profile), ("S2", states_5A.s2_shapes),
           ("S3", states_5A.s3_baseline), ("S4", states_5A.s4_scenarios), ("S5", s5_validation_5A.run)],
    "5B": [("S0", states_5B.s0_gate), ("S1", states_5B.s1_grid_grouping), ("S2", states_5B.s2_latent),
           ("S3", states_5B.s3_counts), ("S4", states_5B.s4_arrivals), ("S5", s5_validation_5B.run)],
}


def load_config(root: Path = ROOT, **overrides) -> dict:
    cfg = yaml.safe_load((Path(root) / "config" / "config.yaml").read_text())
    cfg.update(overrides)
    return cfg


def prepare(results: Path, config: dict, root: Path = ROOT) -> RunContext:
    """Reference tables + run receipt, as the first two rules do."""
    results = Path(results)
    refdata.build(Path(root) / "config" / "reference", results / "reference")
    refs = [results / "reference" / t for t in refdata.TABLES]
    receipt.write(config, results / "run_receipt.json", refs, root=Path(root))
    return RunContext.load(results / "run_receipt.json", config, root=Path(root))


def run_segment(ctx: RunContext, segment: str, timings: dict | None = None) -> None:
    log = logging.getLogger("engine")
    for name, fn in STATES[segment]:
        t0 = time.perf_counter()
        sctx = ctx.for_state(f"{segment}.{name}")
        begin_state(sctx)
        fn(sctx)
        dt = time.perf_counter() - t0
        if timings is not None:
            timings[f"{segment}.{name}"] = dt
        log.info(f"{segment}.{name} done in {dt:.2f}s")
