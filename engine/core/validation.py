"""The shape every segment's validation state shares: checks, dataset re-reads, the bundle."""
from __future__ import annotations

import csv
import io
import json

import polars as pl
import pyarrow.compute as pc

from . import contracts, hashgate
from .context import RunContext
from .datasets import identity_mismatch, read_table, to_polars
from .errors import EngineFailure
from .identity import dumps, sha256_file


class Checks:
    """Every check with its figure, threshold and verdict; codes are `<SEG>.<STATE>.<CHECK>`."""

    def __init__(self, code: str):
        self.code = code
        self.rows: list[dict] = []

    def add(self, name: str, ok: bool, figure=None, threshold=None, detail: str = "", severity: str = "fail") -> bool:
        verdict = "PASS" if ok else ("FAIL" if severity == "fail" else "WARN")
        self.rows.append({"check": name, "code": f"{self.code}.{name.upper()}", "figure": _plain(figure),
                          "threshold": _plain(threshold), "verdict": verdict, "detail": detail})
        return ok

    @property
    def failed(self) -> list[str]:
        return [r["check"] for r in self.rows if r["verdict"] == "FAIL"]


def _plain(x):
    """JSON-stable figures: floats rounded to 10 significant places, recursively. Metrics come from
    multithreaded aggregations whose last bits depend on thread scheduling; the bundle (and so the
    flag) must not."""
    if isinstance(x, float):
        return float(f"{x:.10g}")
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    return x


def load_datasets(ctx: RunContext, segment: str, chk: Checks, extra: tuple[str, ...] = ()) -> dict[str, pl.DataFrame]:
    """Re-read every dataset of `segment` (plus `extra` upstream ids) against its contract and
    this run's identity; dictionary columns come back as strings."""
    ids = [d for d, e in contracts.dictionary().items() if e["segment"] == segment] + list(extra)
    out = {}
    for ds in ids:
        try:
            t = read_table(ctx, ds, chk.code)
            parts = contracts.entry(ds).get("partition_keys") or []
            if parts:                                   # keys and order hold within each partition
                col = t.column(parts[0])
                for v in sorted(set(col.to_pylist())):
                    contracts.validate_table(t.filter(pc.equal(col, v)).drop_columns(parts), ds, chk.code)
            else:
                contracts.validate_table(t, ds, chk.code)
            bad = identity_mismatch(t, ctx)
            chk.add(f"schema_{ds}", not bad, figure=t.num_rows, detail=("identity differs: " + ",".join(bad)) if bad else "")
            out[ds] = to_polars(t)
        except EngineFailure as exc:
            chk.add(f"schema_{ds}", False, detail=exc.line())
    return out


def frames_equal(a: pl.DataFrame, b: pl.DataFrame) -> bool:
    return a.columns == b.columns and a.height == b.height and a.equals(b, null_equal=True)


def rng_accounting(ctx: RunContext, segment: str, states: tuple[str, ...], expected: dict, chk: Checks) -> dict:
    """Compare traced (events, draws, blocks) per family with what the replays consumed."""
    traced = {}
    for state in states:
        p = ctx.io.input(f"trace_{state}")
        if not p.exists():
            chk.add(f"rng_trace_{state}", False, detail=f"missing {p}")
            continue
        traced.update(json.loads(p.read_text()))
    acct = {}
    for fam, want in sorted(expected.items()):
        got = {k: traced.get(fam, {}).get(k) for k in ("events", "draws", "blocks")}
        acct[fam] = {"expected": want, "traced": got, "match": got == want}
        chk.add(f"rng_budget_{fam.split('.', 1)[1]}", got == want, figure=got.get("draws"), threshold=want["draws"])
    return acct


def totals(end_states) -> dict:
    """(events, draws, blocks) of replayed end states, as the rng trace counts them."""
    return {"events": int((end_states[:, 4] > 0).sum()), "draws": int(end_states[:, 3].sum()),
            "blocks": int(end_states[:, 4].sum())}


def issues_csv(rows: list[dict]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["check", "code", "verdict", "figure", "threshold", "detail"])
    for r in rows:
        if r["verdict"] != "PASS":
            w.writerow([r["check"], r["code"], r["verdict"], json.dumps(r["figure"]), json.dumps(r["threshold"]),
                        r["detail"]])
    return buf.getvalue().encode()


def handoffs(segment: str) -> list[str]:
    """The segment's datasets other segments may read: their checksums are sealed in the bundle."""
    return [d for d, e in contracts.dictionary().items() if e["segment"] == segment and e.get("handoff")]


def check_gate_still_holds(ctx: RunContext, segment: str, chk: Checks) -> None:
    """A flag must certify what the gate saw: every upstream flag still verifies, same digest."""
    for up, digest in sorted(hashgate.gate_upstream(ctx.io.input("gate")).items()):
        try:
            now = hashgate.verify(ctx.results / up, chk.code, egress=False)
        except EngineFailure as exc:
            now = exc.line()
        chk.add(f"upstream_{up}_unchanged", now == digest, detail="" if now == digest else
                f"{up} changed after {segment}.S0 verified it; rerun {segment}.S0")


def publish(ctx: RunContext, segment: str, chk: Checks, files: dict[str, object]) -> str:
    """Write the bundle (report, summary, issues, hand-off checksums, lineage + `files`), the flag
    on PASS; on FAIL raise `<SEG>.<STATE>.VALIDATION_FAILED` naming the failed checks."""
    sealed = ctx.io.input("sealed")
    passed = not chk.failed
    blobs = {name: dumps(_plain(obj)).encode() for name, obj in files.items()}
    blobs.update({
        "validation_report.json": dumps({"segment": segment, "status": "PASS" if passed else "FAIL",
                                         "checks": chk.rows}).encode(),
        "summary.json": dumps({"segment": segment, "passed": passed, "failed_checks": chk.failed,
                               "checks": {r["check"]: {"verdict": r["verdict"], "code": r["code"]}
                                          for r in chk.rows}}).encode(),
        "issues.csv": issues_csv(chk.rows),
        hashgate.EGRESS: dumps(hashgate.egress_checksums(
            ctx.results, [contracts.dataset_path(ctx.results, d) for d in handoffs(segment)])).encode(),
        "lineage.json": dumps({**ctx.identity,
                               "sealed_inputs_sha256": sha256_file(sealed) if sealed.exists() else None}).encode(),
    })
    digest = hashgate.publish_bundle(ctx.io.output("flag").parent, blobs, passed, chk.code)
    if not passed:
        raise EngineFailure(f"{chk.code}.VALIDATION_FAILED", "failed checks: " + ", ".join(chk.failed) +
                            f"; see results/{segment}/validation/validation_report.json", {"segment": segment})
    return digest


def page(ctx: RunContext, chk: Checks, title: str, sections: list[tuple[str, str]]) -> str:
    """The segment's report page: verdict and identity, the segment's own sections, every check."""
    from . import html
    verdict = (f"<p><b>{'FAIL' if chk.failed else 'PASS'}</b> &mdash; preset {ctx.world['preset']}, seed {ctx.seed}, "
               f"parameter_hash {ctx.receipt['parameter_hash'][:16]}&hellip;</p>")
    return html.page(title, [("Verdict", verdict), *sections,
                             ("Checks", html.table(chk.rows, ["check", "verdict", "figure", "threshold", "detail"]))])


def finish(ctx: RunContext, chk: Checks, rep, summary_html: str, files: dict[str, object]) -> str:
    """Write the summary page and the run report, then the bundle (and flag, or the failure)."""
    from .publish import publish_text
    check_gate_still_holds(ctx, rep.segment, chk)
    publish_text(summary_html, ctx.io.output("summary"), chk.code, overwrite=True)
    rep.count(checks=len(chk.rows), failed=len(chk.failed))
    rep.rng(None)
    rep.write(ctx.io.output("report"), "FAIL" if chk.failed else "PASS")
    return publish(ctx, rep.segment, chk, files)
