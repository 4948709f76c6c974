"""5B.S5: validation over ALL arrivals, streamed (chapter 5B §4), bundle and flag.

Per scenario: S1's grid and grouping re-read against their contracts; S3's rows re-derived
(realised λ = min(target x factor, λ_max) for every row, factors from S2); every arrival folded
into `ArrivalAudit` one row group at a time (count conservation per S3 row T4, time inside the
bucket, civil time against the cache for every event and against zoneinfo for a sample T1/T2,
routing membership T5, arrival_seq 1..n per merchant); RNG budgets against the S2-S4 traces;
the realism corridors (T6 top-10 tz share, T7 virtual share, NB2 dispersion) as configured.
"""
from __future__ import annotations

import json

import numpy as np
import polars as pl
import pyarrow as pa

from engine.core import contracts, datasets, html, scan, validation
from engine.core.context import RunContext
from engine.core.errors import EngineFailure
from engine.core.segment import Segment
from engine.core.validation import Checks

from . import arrivals as A
from .audit import ArrivalAudit
from .keyed_rows import read_keyed, rows_on_domain
from .policies import MODES
from .states import KEY, SEG, _part, derive, grid_of, latent_matrix, policies, routing_plan

CODE = "5B.S5"
_SEG = Segment(SEG)
_HARD = ("key_not_in_domain", "ts_outside_bucket", "civil_time_mismatch", "flag_inconsistent", "site_not_merchants",
         "site_outside_zone", "edge_not_merchants", "virtual_on_non_virtual", "physical_on_virtual_only",
         "seq_out_of_range", "seq_duplicate", "tzid_primary_wrong")


def _small(ctx: RunContext, ds: str, sid: str, chk: Checks) -> pl.DataFrame | None:
    try:
        t = pa.concat_tables(list(datasets.batches(ctx, ds, CODE, partition=_part(sid))))
        contracts.validate_table(t, ds, CODE)
        chk.add(f"schema_{ds}_{sid}", True, figure=t.num_rows)
        return datasets.to_polars(t)
    except (EngineFailure, ValueError) as exc:
        chk.add(f"schema_{ds}_{sid}", False, detail=exc.line() if isinstance(exc, EngineFailure) else str(exc))
        return None


def _sample_every(total: int, vp: dict) -> int:
    c = vp["civil_time"]
    want = min(max(total * c["zoneinfo_sample_fraction"], c["zoneinfo_sample_min"]), c["zoneinfo_sample_max"])
    return max(1, int(total // max(want, 1)))


def _corridor(chk: Checks, name: str, x: float, spec: dict, lo_key: str = "lo", hi_key: str = "hi") -> None:
    ok = spec[lo_key] <= x <= spec[hi_key]
    chk.add(name, ok, figure=x, threshold=[spec[lo_key], spec[hi_key]], severity=spec.get("severity", "fail"))


class _S3Fold:
    """S3's rows folded one row group at a time (memory: dense per (key, bucket) arrays, not rows):
    coverage, the realised-intensity identity, the zero-λ rule, expected arrivals for the audit,
    the count realism figures and the per-merchant series of the report's figure."""

    def __init__(self, dom: pl.DataFrame, c_group: np.ndarray, f: np.ndarray, H: int, p: dict, m_of_c: np.ndarray,
                 site_c: np.ndarray):
        self.dom, self.c_group, self.f, self.H = dom, c_group, f, H
        cc, lg, vp = p["arrival_count_config_5B"], p["arrival_lgcp_config_5B"], p["validation_policy_5B"]
        self.eps, self.lam_max = float(cc["lambda_zero_eps"]), float(lg["clipping"]["lambda_max"])
        self.mu_min = float(vp["dispersion_nb2"]["mu_min"])
        C = dom.height
        self.seen = np.zeros(C * H, np.uint8)
        self.expected = np.zeros(C * H, np.int64)
        self.m_of_c, self.site_c = m_of_c, site_c
        nm = int(m_of_c.max()) + 1 if C else 0
        self.span = min(H, 168)
        self.fig_n = np.zeros((nm, self.span))
        self.fig_lam = np.zeros((nm, self.span))
        self.bad_realised = self.zero_rule = self.rows = self.used = self.nonzero = self.site_rows = 0
        self.nz_counts: list[np.ndarray] = []
        self.resid = [0, 0.0, 0.0]                    # rows, sum, sum of squares (file order: deterministic)

    def update(self, t: pa.Table) -> None:
        r = read_keyed([t], "bucket_index", ("lambda_baseline", "lambda_realised", "count_N"),
                       f"{CODE}.BUCKET_COUNT_MISMATCH")
        c = rows_on_domain(r, self.dom, f"{CODE}.BUCKET_COUNT_MISMATCH")
        b = r.bucket
        cell = c * self.H + b
        np.add.at(self.seen, cell, 1)
        fac = self.f[self.c_group[c], b]
        mu = r.values["lambda_realised"]
        want = np.minimum(r.values["lambda_baseline"] * fac, self.lam_max)
        self.bad_realised += int(np.count_nonzero(want != mu))
        n = r.values["count_N"].astype(np.int64)
        self.zero_rule += int(np.count_nonzero(n[mu <= self.eps]))
        self.expected[cell] += n                      # cells are unique (checked by `seen`)
        self.rows += len(n)
        self.used += int(np.count_nonzero(mu > self.eps))
        nz = n > 0
        self.nonzero += int(nz.sum())
        self.site_rows += int(np.count_nonzero(nz & self.site_c[c]))
        self.nz_counts.append(n[nz].astype(np.int32))
        sel = mu >= self.mu_min
        if sel.any():
            z = (n[sel] - mu[sel]) / np.sqrt(mu[sel])
            self.resid[0] += int(sel.sum())
            self.resid[1] += float(z.sum())
            self.resid[2] += float((z * z).sum())
        early = b < self.span
        np.add.at(self.fig_n, (self.m_of_c[c[early]], b[early]), n[early])
        np.add.at(self.fig_lam, (self.m_of_c[c[early]], b[early]), r.values["lambda_baseline"][early])

    def realism(self) -> dict:
        nz = np.concatenate(self.nz_counts) if self.nz_counts else np.zeros(0, np.int32)
        k, s1, s2 = self.resid
        gm = self.f.mean(axis=1) if self.f.size else np.ones(1)
        return {"lgcp_mean_factor": float(self.f.mean()) if self.f.size else 1.0,
                # groups are independent, buckets within a group are not: the standard error of the
                # mean factor comes from the spread of the per-group means
                "lgcp_mean_factor_se": float(gm.std() / np.sqrt(len(gm))) if len(gm) > 1 else 0.0,
                "nonzero_fraction": self.nonzero / max(self.rows, 1),
                "p99_p50": float(np.percentile(nz, 99) / max(np.percentile(nz, 50), 1)) if nz.size else 0.0,
                "pearson_resid_std": float(np.sqrt(max(s2 / k - (s1 / k) ** 2, 0.0))) if k > 1 else float("nan"),
                "dispersion_rows": k}

    def figure(self, mids: np.ndarray) -> list[tuple[str, list[float], list[float]]]:
        """Top-3 merchants by arrivals in the first week: realised arrivals and the 5A λ per UTC bucket."""
        tot = self.fig_n.sum(axis=1)
        return [(str(int(mids[i])), self.fig_n[i].tolist(), self.fig_lam[i].tolist())
                for i in np.argsort(-tot, kind="stable")[:3] if tot[i] > 0]


def scenario_checks(ctx: RunContext, sid: str, plan: A.RoutingPlan, p: dict, chk: Checks) -> dict:
    vp, cc = p["validation_policy_5B"], p["arrival_count_config_5B"]
    grid = grid_of(ctx, sid, CODE)
    grp = _small(ctx, "s1_grouping_5B", sid, chk)
    if _small(ctx, "s1_time_grid_5B", sid, chk) is None or grp is None:
        return {}
    dom = grp.select(KEY)
    gids, f = latent_matrix(ctx, sid, CODE, grid.H)
    gpos = {g: i for i, g in enumerate(gids)}
    c_group = grp["group_id"].replace_strict(gpos, default=-1, return_dtype=pl.Int64).to_numpy()
    chk.add(f"every_group_has_a_latent_series_{sid}", bool(np.all(c_group >= 0)))
    cp = A.coarse_plan(dom, plan, derive(ctx, sid))
    um, m_of_c = np.unique(cp.c_mid, return_inverse=True)
    fold = _S3Fold(dom, np.maximum(c_group, 0), f, grid.H, p, m_of_c,
                   plan.m_mode[cp.c_m] != MODES.index("VIRTUAL_ONLY"))
    for _, t in scan.scan_dataset(ctx, "s3_bucket_counts_5B", CODE, _part(sid)):    # contract + key order
        fold.update(t)
    chk.add(f"s3_covers_domain_{sid}", bool(np.all(fold.seen == 1)), figure=fold.rows, threshold=dom.height * grid.H,
            detail="every (merchant, zone, channel) of S1 has exactly one row per bucket")
    chk.add(f"realised_intensity_{sid}", fold.bad_realised == 0, figure=fold.bad_realised, threshold=0,
            detail="lambda_realised = min(lambda_baseline x factor of the row's group at its bucket, lambda_max)")
    chk.add(f"zero_lambda_no_events_{sid}", fold.zero_rule == 0, figure=fold.zero_rule, threshold=0)
    # S4: every arrival, streamed
    total = int(fold.expected.sum())
    au = ArrivalAudit(cp, plan, grid, sample_every=_sample_every(total, vp), expected=fold.expected)
    rows = 0
    for _, t in scan.scan_dataset(ctx, "arrival_events_5B", CODE, _part(sid)):  # contract, (merchant, seq) order
        au.update(t)
        rows += t.num_rows
    chk.add(f"schema_arrival_events_5B_{sid}", True, figure=rows,
            detail="every row group against the contract; keys strictly increasing across files")
    res = au.finish(None)
    v = res["counts"]
    cons = res["conservation"]
    chk.add(f"count_conservation_{sid}", cons["rows_mismatched"] == 0 and cons["total_seen"] == total,
            figure=cons["abs_diff"], threshold=0, detail=f"{cons['total_seen']:,} arrivals, {total:,} counted in S3")
    for k in _HARD:
        chk.add(f"{k}_{sid}", v[k] == 0, figure=v[k], threshold=0)
    chk.add(f"arrival_seq_complete_{sid}", res["pk_missing"] == 0, figure=res["pk_missing"], threshold=0)
    zi = res["zoneinfo"]
    civ = vp["civil_time"]
    rate = zi["mismatch"] / max(zi["sample"], 1)
    chk.add(f"civil_time_vs_zoneinfo_{sid}", rate <= civ["max_mismatch_rate"] and zi["sample"] > 0 or total == 0,
            figure=zi["mismatch"], threshold=civ["max_mismatch_rate"], detail=f"sample of {zi['sample']:,} arrivals")
    # the summary matches the events' virtual split (streamed: ~nonzero S3 rows)
    sm = {"rows": 0, "n": 0, "virtual": 0, "edge_rows": 0}
    for _, t in scan.scan_dataset(ctx, "s4_arrival_summary_5B", CODE, _part(sid)):
        cv = t.column("count_virtual").to_numpy()
        sm["rows"] += t.num_rows
        sm["n"] += int(t.column("count_N").to_numpy().sum())
        sm["virtual"] += int(cv.sum())
        sm["edge_rows"] += int(np.count_nonzero(cv))
    chk.add(f"summary_matches_events_{sid}", sm["n"] == v["arrivals"] and sm["virtual"] == v["virtual_arrivals"]
            and sm["rows"] == fold.nonzero, figure=sm["virtual"], threshold=v["virtual_arrivals"])
    # RNG budgets this scenario should have consumed
    G = len(gids)
    nb2 = cc["count_law"] == "nb2"
    edge_rows = sm["edge_rows"]
    expected = {
        "5B.latent_vector": {"events": G, "draws": 2 * G * grid.H, "blocks": G * grid.H},
        "5B.bucket_count": {"events": fold.used, "draws": fold.used * (2 if nb2 else 1), "blocks": fold.used},
        "5B.arrival_time_jitter": {"events": fold.nonzero, **res["rng_expected"]["5B.arrival_time_jitter"]},
        "5B.arrival_site_pick": {"events": fold.site_rows, **res["rng_expected"]["5B.arrival_site_pick"]},
        "5B.arrival_edge_pick": {"events": edge_rows, **res["rng_expected"]["5B.arrival_edge_pick"]},
    }
    realism = {**fold.realism(), **res["realism"]}
    return {"expected": expected, "realism": realism, "arrivals": v["arrivals"], "virtual": v["virtual_arrivals"],
            "fallback": v["fallback_arrivals"], "local_hour": res["local_hour"], "zoneinfo_sample": zi["sample"],
            "figure": fold.figure(um)}


def run(ctx: RunContext) -> None:
    rep = _SEG.report("S5")
    p = policies(ctx, "S5")
    vp = p["validation_policy_5B"]
    chk = Checks(CODE)
    sids = datasets.scenario_partitions(ctx, "s1_grouping_5B", CODE)
    per: dict[str, dict] = {}
    try:
        plan = routing_plan(ctx, CODE, [grid_of(ctx, s, CODE) for s in sids])
        for sid in sids:
            per[sid] = scenario_checks(ctx, sid, plan, p, chk)
    except EngineFailure as exc:
        chk.add("inputs_readable", False, detail=exc.line())
    # RNG accounting: summed over scenarios against the traces of S2, S3, S4
    expected: dict[str, dict] = {}
    for s in per.values():
        for fam, e in s.get("expected", {}).items():
            acc = expected.setdefault(fam, {"events": 0, "draws": 0, "blocks": 0})
            for k in acc:
                acc[k] += e[k]
    acct = validation.rng_accounting(ctx, SEG, ("S2", "S3", "S4"), expected, chk) if expected else {}
    metrics = {"scenarios": {sid: {k: s[k] for k in ("arrivals", "virtual", "fallback", "realism", "zoneinfo_sample")}
                             for sid, s in per.items() if s}, "rng": acct}
    for sid, s in metrics["scenarios"].items():
        rl = s["realism"]
        tol = max(vp["lgcp_mean_factor_tol"], 4.0 * rl["lgcp_mean_factor_se"])     # small worlds: sampling noise
        chk.add(f"lgcp_mean_factor_{sid}", abs(rl["lgcp_mean_factor"] - 1) <= tol,
                figure=rl["lgcp_mean_factor"], threshold=tol, detail="|mean - 1| <= max(policy tol, 4 standard errors)")
        chk.add(f"nonzero_bucket_fraction_{sid}", rl["nonzero_fraction"] >= vp["min_nonzero_bucket_fraction"],
                figure=rl["nonzero_fraction"], threshold=vp["min_nonzero_bucket_fraction"])
        ht = vp["heavy_tail_p99_p50_min"]
        chk.add(f"heavy_tail_p99_p50_{sid}", rl["p99_p50"] >= ht["value"], figure=rl["p99_p50"],
                threshold=ht["value"], severity=ht.get("severity", "fail"))
        dn = vp["dispersion_nb2"]
        if p["arrival_count_config_5B"]["count_law"] == "nb2" and rl["dispersion_rows"] > 1:
            _corridor(chk, f"dispersion_nb2_{sid}", rl["pearson_resid_std"], dn)
        t6 = vp["top10_tz_share_max"]
        chk.add(f"top10_tz_share_{sid}", rl["top10_tz_share"] <= t6["value"], figure=rl["top10_tz_share"],
                threshold=t6["value"], severity=t6.get("severity", "fail"))
        _corridor(chk, f"virtual_share_{sid}", rl["virtual_share"], vp["virtual_share"])
    sections = []
    if per:
        sections.append(("Arrivals per scenario", html.bars([(k, float(s["arrivals"])) for k, s in per.items() if s])))
        for sid, s in per.items():
            for mid, arr, lam in s.get("figure", []):
                sections.append((f"{sid}: merchant {mid}, arrivals per UTC hour vs the 5A intensity (first week)",
                                 html.lines([("realised arrivals", arr), ("5A λ (expected)", lam)], "UTC bucket")))
            if s:
                sections.append((f"{sid}: arrivals per hour of the local day (primary clock)",
                                 html.bars([(f"{h:02d}:00", float(x)) for h, x in enumerate(s["local_hour"])])))
        sections.append(("Realism figures", "<pre>" + json.dumps(metrics["scenarios"], indent=1, sort_keys=True)
                         + "</pre>"))
    rep.count(arrivals=sum(s.get("arrivals", 0) for s in per.values()))
    page = validation.page(ctx, chk, "Segment 5B: realised arrivals", sections)
    validation.finish(ctx, chk, rep, page, {"metrics.json": metrics})
