"""5B.S5: validation over ALL arrivals, streamed (chapter 5B §4), bundle and flag.

Per scenario: S1's grid and grouping re-read against their contracts; S3's rows re-derived
(realised λ = min(target x factor, λ_max) for every row, factors from S2); every arrival folded
into `ArrivalAudit` one row group at a time (count conservation per S3 row T4, time inside the
bucket, civil time against the cache for every event and against zoneinfo for a sample T1/T2,
routing membership T5, arrival_seq 1..n per merchant); RNG budgets against the S2-S4 traces;
the realism corridors (T6 top-10 tz share, T7 virtual share, NB2 dispersion) as configured.

Cluster execution (config `shards`, issue "Cluster execution"): the streaming part (`audit_part`) runs
as one job per scenario and merchant-id range, each reading only the row groups of S3, the arrivals and
the summary whose merchant_id statistics meet its range, and writing a small partial result (counters, a count
histogram, per-merchant residual sums, its figure candidates, its zoneinfo sample's verdicts);
`conclude` folds the partials and does everything global (grid, grouping and latent field, RNG
accounting, corridors, report page, bundle, flag). One job is the fold of one partial over the whole
id range, so the bundle cannot depend on the shard count: every figure is an integer sum, or a float
computed from the same numbers in the same order (sums per merchant, added in merchant order; the
p99/p50 from a histogram), and the zoneinfo sample is a rule per event, not a position in the stream.
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator

import numpy as np
import polars as pl
import pyarrow as pa
from numba import njit

from engine.core import contracts, datasets, html, scan, shards, validation
from engine.core.context import RunContext
from engine.core.errors import EngineFailure
from engine.core.identity import dumps
from engine.core.publish import publish_text, read_manifest
from engine.core.segment import Segment
from engine.core.validation import Checks

from . import arrivals as A
from .audit import ArrivalAudit, derived
from .keyed_rows import read_keyed, rows_on_domain
from .policies import MODES
from .states import KEY, SEG, _part, derive, grid_of, latent_matrix, policies, routing_plan

CODE = "5B.S5"
_SEG = Segment(SEG)
_HARD = ("key_not_in_domain", "ts_outside_bucket", "civil_time_mismatch", "flag_inconsistent", "site_not_merchants",
         "site_outside_zone", "edge_not_merchants", "virtual_on_non_virtual", "physical_on_virtual_only",
         "seq_out_of_range", "seq_duplicate", "tzid_primary_wrong")
_ALL = 1 << 64                 # open upper end of the last merchant range
_HIST_DENSE = 1 << 20          # S3 counts below this are histogrammed densely


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



def merchant_range(mids: np.ndarray, shard: tuple[int, int] | None) -> tuple[int, int]:
    """[lo, hi) of the merchant ids shard k of n audits: the ranks of `shards.merchant_mask` (ceil(k·M/n)
    onwards), widened to tile the whole id space, so a row of a merchant outside the domain is still
    audited, by exactly one shard."""
    if shard is None:
        return 0, _ALL
    k, n = shard
    u = np.unique(np.asarray(mids, np.uint64))

    def start(j: int) -> int:
        r = -(-j * len(u) // n)
        return 0 if j == 0 else int(u[r]) if r < len(u) else _ALL
    return start(k), start(k + 1)


def _cut(cp: A.CoarsePlan, a: int, b: int) -> A.CoarsePlan:
    """The coarse plan of domain rows [a, b) (one merchant range: the domain is merchant-major); its
    per-row arrays (and the per-row stream keys) are sliced, everything else is kept."""
    C = len(cp.c_mid)

    def cut(v):
        if isinstance(v, dict):
            return {k: cut(x) for k, x in v.items()}
        return v[a:b] if isinstance(v, np.ndarray) and len(v) == C else v
    return dataclasses.replace(cp, **{f.name: cut(getattr(cp, f.name)) for f in dataclasses.fields(cp)})


class _Range:
    """The rows of one merchant-id range [lo, hi) of a merchant-major dataset: row groups whose
    merchant_id statistics miss it are skipped, rows outside it masked off. Remembers the first and last
    row group it read (position, sort key) so the merge can check the key order across shards."""

    def __init__(self, lo: int, hi: int):
        self.lo, self.hi = lo, hi
        self.whole = lo == 0 and hi == _ALL
        self.ends: dict[str, list | None] = {}
        self.rows: dict[str, int] = {}

    def _meets(self, md, i: int) -> bool:
        st = md.row_group(i).column(md.schema.names.index("merchant_id")).statistics
        return st is None or not st.has_min_max or (int(st.max) >= self.lo and int(st.min) < self.hi)

    def scan(self, ctx: RunContext, ds: str, sid: str) -> Iterator[pa.Table]:
        files: dict[str, int] = {}
        at: list = [None]

        def keep(f: str, i: int, md) -> bool:
            ok = self.whole or self._meets(md, i)
            if ok:
                at[0] = [files.setdefault(f, len(files)), i]
            return ok
        key = contracts.entry(ds)["sort_key"]
        ends, rows = None, 0
        for _, t in scan.scan_dataset(ctx, ds, CODE, _part(sid), keep_group=keep):     # contract + key order
            if not t.num_rows:
                continue
            last = [at[0], [t.column(c)[t.num_rows - 1].as_py() for c in key]]
            ends = [ends[0] if ends else [at[0], [t.column(c)[0].as_py() for c in key]], last]
            if not self.whole:
                m = np.asarray(t.column("merchant_id").to_numpy(), np.uint64)
                sel = m >= np.uint64(self.lo)
                if self.hi < _ALL:
                    sel &= m < np.uint64(self.hi)
                if not sel.all():
                    t = t.filter(pa.array(sel))
            rows += t.num_rows
            if t.num_rows:
                yield t
        self.ends[ds], self.rows[ds] = ends, rows


@njit(cache=True, nogil=True)
def _fold_rows(c, b, n, mu, base, H, m_of_c, mu_min, span, seen, expected, rk, rs1, rs2, fig_n, fig_lam):
    """One row group of S3 rows into the dense per-cell arrays (`seen` saturates at 255: any value but 1
    is a coverage failure) and the per-merchant sums, added in row order (the same sums whatever the
    row groups or shards)."""
    for i in range(c.shape[0]):
        cell = c[i] * H + b[i]
        if seen[cell] < 255:
            seen[cell] += 1
        expected[cell] += n[i]
        m = m_of_c[c[i]]
        if mu[i] >= mu_min:
            z = (np.float64(n[i]) - mu[i]) / np.sqrt(mu[i])
            rk[m] += 1
            rs1[m] += z
            rs2[m] += z * z
        if b[i] < span:
            fig_n[m, b[i]] += n[i]
            fig_lam[m, b[i]] += base[i]


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
        self.nz_hist = np.zeros(1, np.int64)          # rows per non-zero count (the p99/p50 of any merge)
        self.nz_big: dict[int, int] = {}              # counts >= _HIST_DENSE
        # Pearson residuals per merchant, summed in row order: (rows, sum, sum of squares)
        self.rk, self.rs1, self.rs2 = np.zeros(nm, np.int64), np.zeros(nm), np.zeros(nm)

    def update(self, t: pa.Table) -> None:
        r = read_keyed([t], "bucket_index", ("lambda_baseline", "lambda_realised", "count_N"),
                       f"{CODE}.BUCKET_COUNT_MISMATCH")
        c = rows_on_domain(r, self.dom, f"{CODE}.BUCKET_COUNT_MISMATCH")
        b = r.bucket
        fac = self.f[self.c_group[c], b]
        mu = r.values["lambda_realised"]
        want = np.minimum(r.values["lambda_baseline"] * fac, self.lam_max)
        self.bad_realised += int(np.count_nonzero(want != mu))
        n = r.values["count_N"].astype(np.int64)
        self.zero_rule += int(np.count_nonzero(n[mu <= self.eps]))
        # cells seen and expected counts, residual sums per merchant in row order, the first-week figure
        _fold_rows(c, b, n, mu, r.values["lambda_baseline"], self.H, self.m_of_c, self.mu_min, self.span,
                   self.seen, self.expected, self.rk, self.rs1, self.rs2, self.fig_n, self.fig_lam)
        self.rows += len(n)
        self.used += int(np.count_nonzero(mu > self.eps))
        nz = n > 0
        self.nonzero += int(nz.sum())
        self.site_rows += int(np.count_nonzero(nz & self.site_c[c]))
        cnt = n[nz]
        for x, k in zip(*np.unique(cnt[cnt >= _HIST_DENSE], return_counts=True)):     # rare (or damaged) rows
            self.nz_big[int(x)] = self.nz_big.get(int(x), 0) + int(k)
        h = np.bincount(cnt[cnt < _HIST_DENSE])
        if len(h) > len(self.nz_hist):
            self.nz_hist = np.concatenate([self.nz_hist, np.zeros(len(h) - len(self.nz_hist), np.int64)])
        self.nz_hist[:len(h)] += h

    def partial(self, mids: np.ndarray) -> dict:
        """What the merge needs (JSON): counters, the count histogram, the residual sums of the merchants
        with any, and this range's figure candidates (top-3 by arrivals in the first week)."""
        tot = self.fig_n.sum(axis=1)
        top = [i for i in np.argsort(-tot, kind="stable")[:3] if tot[i] > 0]
        v = np.flatnonzero(self.nz_hist)
        r = np.flatnonzero(self.rk)
        return {"n": {"rows": self.rows, "bad_cover": int(np.count_nonzero(self.seen != 1)),
                      "bad_realised": self.bad_realised, "zero_rule": self.zero_rule, "used": self.used,
                      "nonzero": self.nonzero, "site_rows": self.site_rows, "expected": int(self.expected.sum())},
                "nz_hist": [[int(x), int(self.nz_hist[x])] for x in v] + [[x, k] for x, k in sorted(self.nz_big.items())],
                "resid": [[int(mids[i]), int(self.rk[i]), float(self.rs1[i]), float(self.rs2[i])] for i in r],
                "fig": [[float(tot[i]), int(mids[i]), self.fig_n[i].tolist(), self.fig_lam[i].tolist()] for i in top]}


def _arrivals_in(ctx: RunContext, sid: str) -> int:
    """A scenario's arrivals as sealed (manifest rows): the size of the zoneinfo sample, known to every shard."""
    man = read_manifest(ctx.io.input("arrival_events_5B")) or {"files": []}
    return sum(int(e.get("rows", 0)) for e in man["files"] if e["path"].startswith(f"scenario_id={sid}/"))


def _domain(ctx: RunContext, sid: str, H: int, chk: Checks) -> tuple | None:
    """(grouping, group ids, latent factors (G, H), group index per domain row), or None if S1 fails its contract."""
    grp = _small(ctx, "s1_grouping_5B", sid, chk)
    if _small(ctx, "s1_time_grid_5B", sid, chk) is None or grp is None:
        return None
    gids, f = latent_matrix(ctx, sid, CODE, H)
    gpos = {g: i for i, g in enumerate(gids)}
    c_group = grp["group_id"].replace_strict(gpos, default=-1, return_dtype=pl.Int64).to_numpy()
    return grp, gids, f, c_group


def _scenario_part(ctx: RunContext, sid: str, plan: A.RoutingPlan, p: dict, shard, at: dict) -> dict | None:
    """One scenario's streamed checks over the merchants of `shard` (None: all)."""
    at["phase"] = 0
    grid = grid_of(ctx, sid, CODE)
    d = _domain(ctx, sid, grid.H, Checks(CODE))               # the merge reports S1's own checks
    if d is None:
        return None
    grp, _, f, c_group = d
    dom = grp.select(KEY)
    cp = A.coarse_plan(dom, plan, derive(ctx, sid))
    lo, hi = merchant_range(cp.c_mid, shard)
    a = int(np.searchsorted(cp.c_mid, np.uint64(lo)))
    b = int(np.searchsorted(cp.c_mid, np.uint64(hi))) if hi < _ALL else len(cp.c_mid)
    cp, dom = _cut(cp, a, b), dom.slice(a, b - a)
    um, m_of_c = np.unique(cp.c_mid, return_inverse=True)
    fold = _S3Fold(dom, np.maximum(c_group[a:b], 0), f, grid.H, p, m_of_c,
                   plan.m_mode[cp.c_m] != MODES.index("VIRTUAL_ONLY"))
    rg = _Range(lo, hi)
    at["phase"] = 1
    for t in scan.prefetched(rg.scan(ctx, "s3_bucket_counts_5B", sid)):
        fold.update(t)
    at["phase"] = 2                                           # S4: every arrival of the range, streamed
    every = _sample_every(_arrivals_in(ctx, sid), p["validation_policy_5B"])
    au = ArrivalAudit(cp, plan, grid, sample_every=every, expected=fold.expected)
    for t in scan.prefetched(rg.scan(ctx, "arrival_events_5B", sid)):
        au.update(t)
    res = au.finish(None)
    at["phase"] = 3                                           # the summary's virtual split (~nonzero S3 rows)
    sm = {"rows": 0, "n": 0, "virtual": 0, "edge_rows": 0}
    for t in scan.prefetched(rg.scan(ctx, "s4_arrival_summary_5B", sid)):
        cv = t.column("count_virtual").to_numpy()
        sm["rows"] += t.num_rows
        sm["n"] += int(t.column("count_N").to_numpy().sum())
        sm["virtual"] += int(cv.sum())
        sm["edge_rows"] += int(np.count_nonzero(cv))
    zi = res["zoneinfo"]
    audit = {"v": res["counts"], **res["conservation"], "pk_missing": res["pk_missing"],
             "zi_sample": zi["sample"], "zi_mismatch": zi["mismatch"], "zi_one_hour": zi["one_hour"],
             "tz_hist": au.tz_hist.tolist(), "local_hour": res["local_hour"], "rows": rg.rows["arrival_events_5B"]}
    return {"s3": fold.partial(um), "audit": audit, "summary": sm, "ends": rg.ends}


def audit_part(ctx: RunContext, shard: tuple[int, int] | None, p: dict | None = None) -> dict:
    """The streamed checks of every scenario (or the job's own, `ctx.io.scenario`) over one merchant
    range, as JSON-ready partial results; a failure to read stops here (as one job stops) and is handed
    to the merge with where it happened."""
    p = p or policies(ctx, "S5")
    sids = datasets.scenario_partitions(ctx, "s1_grouping_5B", CODE)
    out: dict = {"shard": list(shard) if shard else None, "scenarios": {}, "error": None}
    at: dict = {"sid": None, "phase": 0}
    try:
        plan = routing_plan(ctx, CODE, [grid_of(ctx, s, CODE) for s in sids])
        for sid in shards.own_scenarios(ctx, sids, CODE):
            at["sid"] = sid
            out["scenarios"][sid] = _scenario_part(ctx, sid, plan, p, shard, at)
    except EngineFailure as exc:
        out["error"] = {**at, "line": exc.line()}
    return out


def _add(a, b):
    """Element-wise sum of two partial counters (ints, lists of ints, dicts of them)."""
    if isinstance(a, dict):
        return {k: _add(a[k], b[k]) for k in a}
    if isinstance(a, list):
        return [x + y for x, y in zip(a, b, strict=True)]
    return a + b


def _fold(qs: list[dict]) -> dict:
    """One scenario's partials (shard order) as one: the same numbers whatever the shard count."""
    n, au, sm = qs[0]["s3"]["n"], qs[0]["audit"], qs[0]["summary"]
    hist: dict[int, int] = {}
    for q in qs[1:]:
        n, au, sm = _add(n, q["s3"]["n"]), _add(au, q["audit"]), _add(sm, q["summary"])
    for q in qs:
        for v, c in q["s3"]["nz_hist"]:
            hist[v] = hist.get(v, 0) + c
    resid = sorted((r for q in qs for r in q["s3"]["resid"]), key=lambda r: r[0])        # merchant order
    fig = sorted((r for q in qs for r in q["s3"]["fig"]), key=lambda r: (-r[0], r[1]))[:3]
    return {"n": n, "audit": au, "summary": sm, "hist": sorted(hist.items()), "fig": fig,
            "resid": (sum(r[1] for r in resid), float(np.sum([r[2] for r in resid])),
                      float(np.sum([r[3] for r in resid])))}


def _order_breaks(qs: list[dict]) -> list[str]:
    """Datasets whose key order breaks between shards: each shard checked the row groups it read; the
    ranges must follow one another (file position and key) for the whole stream to be in order."""
    bad = []
    for ds in qs[0]["ends"]:
        ends = [q["ends"][ds] for q in qs if q["ends"][ds]]
        for (_, (pa_, ka)), ((pb, kb), _) in zip(ends, ends[1:]):
            if not (pa_ == pb or (pa_ < pb and ka < kb)):
                bad.append(ds)
                break
    return bad


def _percentile(hist: list[tuple[int, int]], q: float) -> float:
    """np.percentile (linear) of the counts, from their histogram."""
    v = np.array([h[0] for h in hist], np.int64)
    cum = np.cumsum([h[1] for h in hist])
    x = (int(cum[-1]) - 1) * q / 100
    lo = int(np.floor(x))
    a, b = (int(v[np.searchsorted(cum, i, side="right")]) for i in (lo, min(lo + 1, int(cum[-1]) - 1)))
    return a + (b - a) * (x - lo)


def _realism(s: dict, f: np.ndarray) -> dict:
    n, hist = s["n"], s["hist"]
    k, s1, s2 = s["resid"]
    gm = f.mean(axis=1) if f.size else np.ones(1)
    return {"lgcp_mean_factor": float(f.mean()) if f.size else 1.0,
            # groups are independent, buckets within a group are not: the standard error of the
            # mean factor comes from the spread of the per-group means
            "lgcp_mean_factor_se": float(gm.std() / np.sqrt(len(gm))) if len(gm) > 1 else 0.0,
            "nonzero_fraction": n["nonzero"] / max(n["rows"], 1),
            "p99_p50": float(_percentile(hist, 99) / max(_percentile(hist, 50), 1)) if hist else 0.0,
            "pearson_resid_std": float(np.sqrt(max(s2 / k - (s1 / k) ** 2, 0.0))) if k > 1 else float("nan"),
            "dispersion_rows": k}


def scenario_checks(ctx: RunContext, sid: str, qs: list[dict | None], p: dict, chk: Checks) -> dict:
    """One scenario's checks from its partials (one per shard, in shard order)."""
    vp, cc = p["validation_policy_5B"], p["arrival_count_config_5B"]
    grid = grid_of(ctx, sid, CODE)
    d = _domain(ctx, sid, grid.H, chk)
    if d is None or any(q is None for q in qs):
        return {}
    grp, gids, f, c_group = d
    chk.add(f"every_group_has_a_latent_series_{sid}", bool(np.all(c_group >= 0)))
    s = _fold(qs)
    n, au, sm = s["n"], s["audit"], s["summary"]
    for ds in _order_breaks(qs):
        chk.add(f"key_order_across_shards_{ds}_{sid}", False, detail="the last key of one shard's row groups is "
                "not below the first key of the next shard's")
    chk.add(f"s3_covers_domain_{sid}", n["bad_cover"] == 0, figure=n["rows"], threshold=grp.height * grid.H,
            detail="every (merchant, zone, channel) of S1 has exactly one row per bucket")
    chk.add(f"realised_intensity_{sid}", n["bad_realised"] == 0, figure=n["bad_realised"], threshold=0,
            detail="lambda_realised = min(lambda_baseline x factor of the row's group at its bucket, lambda_max)")
    chk.add(f"zero_lambda_no_events_{sid}", n["zero_rule"] == 0, figure=n["zero_rule"], threshold=0)
    total = n["expected"]
    chk.add(f"schema_arrival_events_5B_{sid}", True, figure=au["rows"],
            detail="every row group against the contract; keys strictly increasing across files")
    v = au["v"]
    chk.add(f"count_conservation_{sid}", au["rows_mismatched"] == 0 and au["total_seen"] == total,
            figure=au["abs_diff"], threshold=0, detail=f"{au['total_seen']:,} arrivals, {total:,} counted in S3")
    for k in _HARD:
        chk.add(f"{k}_{sid}", v[k] == 0, figure=v[k], threshold=0)
    chk.add(f"arrival_seq_complete_{sid}", au["pk_missing"] == 0, figure=au["pk_missing"], threshold=0)
    civ = vp["civil_time"]
    rate = au["zi_mismatch"] / max(au["zi_sample"], 1)
    chk.add(f"civil_time_vs_zoneinfo_{sid}", rate <= civ["max_mismatch_rate"] and au["zi_sample"] > 0 or total == 0,
            figure=au["zi_mismatch"], threshold=civ["max_mismatch_rate"], detail=f"sample of {au['zi_sample']:,} arrivals")
    chk.add(f"summary_matches_events_{sid}", sm["n"] == v["arrivals"] and sm["virtual"] == v["virtual_arrivals"]
            and sm["rows"] == n["nonzero"], figure=sm["virtual"], threshold=v["virtual_arrivals"])
    # RNG budgets this scenario should have consumed
    G = len(gids)
    nb2 = cc["count_law"] == "nb2"
    dv = derived(v, np.asarray(au["tz_hist"]))
    rx = dv["rng_expected"]
    expected = {
        "5B.latent_vector": {"events": G, "draws": 2 * G * grid.H, "blocks": G * grid.H},
        "5B.bucket_count": {"events": n["used"], "draws": n["used"] * (2 if nb2 else 1), "blocks": n["used"]},
        "5B.arrival_time_jitter": {"events": n["nonzero"], **rx["5B.arrival_time_jitter"]},
        "5B.arrival_site_pick": {"events": n["site_rows"], **rx["5B.arrival_site_pick"]},
        "5B.arrival_edge_pick": {"events": sm["edge_rows"], **rx["5B.arrival_edge_pick"]},
    }
    realism = {**_realism(s, f), **dv["realism"]}
    return {"expected": expected, "realism": realism, "arrivals": v["arrivals"], "virtual": v["virtual_arrivals"],
            "fallback": v["fallback_arrivals"], "local_hour": au["local_hour"], "zoneinfo_sample": au["zi_sample"],
            "figure": [(str(mid), arr, lam) for _, mid, arr, lam in s["fig"]]}


def _first_error(parts: list[dict], sids: list[str]) -> tuple[int, str] | None:
    """(scenario position, line) of the failure one job would have stopped at first."""
    errs = [((sids.index(e["sid"]) if e["sid"] in sids else -1), e["phase"], k, e["line"])
            for k, q in enumerate(parts) if (e := q["error"])]
    return (min(errs)[0], min(errs)[3]) if errs else None


def conclude(ctx: RunContext, parts: list[dict], rep, p: dict | None = None) -> None:
    """Fold the partials (one per shard, in shard order) into the checks; RNG accounting, corridors,
    report page, bundle, flag."""
    p = p or policies(ctx, "S5")
    vp = p["validation_policy_5B"]
    chk = Checks(CODE)
    sids = datasets.scenario_partitions(ctx, "s1_grouping_5B", CODE)
    per: dict[str, dict] = {}
    err = _first_error(parts, sids)
    stop = err[1] if err else None
    try:
        for i, sid in enumerate(sids):
            if err and i >= err[0]:
                break
            qs = [q["scenarios"][sid] for q in parts if sid in q["scenarios"]]
            if not qs:
                raise EngineFailure(f"{CODE}.SHARD_SCENARIO_MISSING", "no shard audited this scenario: config "
                                    "`scenarios` differs from the data; rerun 5B.S5 with the world's config",
                                    {"scenario_id": sid})
            per[sid] = scenario_checks(ctx, sid, qs, p, chk)
    except EngineFailure as exc:
        stop = exc.line()
    if stop:
        chk.add("inputs_readable", False, detail=stop)
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


def run(ctx: RunContext) -> None:
    """5B.S5 as one job (the fold of one partial over every merchant), or as shard k of n
    (`ctx.io.shard`): that shard's partial result, for `merge`."""
    rep = _SEG.report("S5")
    if ctx.io.shard is None:
        p = policies(ctx, "S5")
        conclude(ctx, [json.loads(dumps(audit_part(ctx, None, p)))], rep, p)      # the types a merge reads back
        return
    q = audit_part(ctx, ctx.io.shard)
    publish_text(dumps(q), ctx.io.output("partial"), CODE, overwrite=True)
    rep.count(arrivals=sum(s["audit"]["v"]["arrivals"] for s in q["scenarios"].values() if s))
    rep.data["shard"] = [ctx.io.scenario, *ctx.io.shard]
    rep.rng(None)
    rep.write(ctx.io.output("report"), "FAIL" if q["error"] else "PASS")


def merge(ctx: RunContext) -> None:
    """5B.S5 run as shards: their partials folded in shard order (the bundle of one job)."""
    n = sum(1 for name in ctx.io.inputs if name.startswith("shard") and name.endswith("_partial"))
    parts = [json.loads(ctx.io.input(f"shard{k}_partial").read_text()) for k in range(n)]
    rep = _SEG.report("S5")
    rep.data["shards"] = n
    conclude(ctx, parts, rep)
