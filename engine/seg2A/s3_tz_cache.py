"""2A.S3: the tz transition cache from the pinned tzdata wheel (RNG-free, seed-independent).

The tzid domain is every zone a site can get (zone tables, polygon zones, override tzids), so
S3 does not wait on S2. A cache that does not cover this world's horizon (±1 day) stops the
state before anything is published.
"""
from __future__ import annotations

from engine.core import datasets, tzcache
from engine.core.context import RunContext

from . import tz_resolve
from .common import load_policies, report_path, state_report, world_window

CODE = "2A.S3"


def run(ctx: RunContext) -> None:
    rep = state_report("S3")
    pol = load_policies(ctx, "S3")
    tzp = pol["tz_policy"]
    domain = tz_resolve.tz_domain(pol["tz_overrides"])
    table, manifest = tzcache.build_tz_cache(domain, tzp["horizon"]["start"], tzp["horizon"]["end"],
                                             code_prefix=CODE, expected_version=tzp["tzdata_version"])
    lo, hi = world_window(ctx)
    tzcache.check_coverage(manifest, domain, lo, hi, short_code=f"{CODE}.TZ_CACHE_HORIZON_SHORT",
                           missing_code=f"{CODE}.TZID_NOT_IN_CACHE", table=table)
    datasets.publish(ctx, table, "tz_timetable_cache", CODE, extra={"tz_cache": manifest})
    rep.count(tzids=len(domain), rows=table.num_rows)
    rep.data["tz_cache"] = {k: manifest[k] for k in ("horizon_start_utc", "horizon_end_utc", "tz_index_digest")
                            if k in manifest}
    rep.rng(None)
    rep.write(report_path(ctx, "S3"))
