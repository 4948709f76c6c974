"""What each state reads and writes, by name: the one owner of paths (DESIGN §4, §10).

`declare(state_id)` turns `contracts/states.yaml` and the dataset dictionary into the named
inputs and outputs of a state, as repository-relative paths. The Snakemake rules declare
exactly these (rules/common.smk), and the engine opens only these: `StateIO.input(name)`
refuses a name the state did not declare. A dataset is declared by its `_manifest.json`,
so a damaged dataset can be un-sealed and its producer rerun (engine.core.integrity).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from . import contracts
from .errors import EngineFailure

MANIFEST = "_manifest.json"
RECEIPT = "results/run_receipt.json"


@functools.cache
def states() -> dict[str, dict]:
    with open(contracts.CONTRACTS / "states.yaml") as f:
        return yaml.safe_load(f)["states"]


def dataset_manifest(dataset_id: str) -> str:
    return f"{contracts.entry(dataset_id)['path']}/{MANIFEST}"


def segment_of(dataset_id: str) -> str:
    return contracts.entry(dataset_id)["segment"]


def produced_by(state_id: str) -> list[str]:
    return [d for d, e in contracts.dictionary().items() if e["produced_by"] == state_id]


Job = tuple  # (scenario_id | None, k, n): one shard job; scenario None = every scenario


def shard_jobs(config: dict, state_id: str) -> list[Job]:
    """The jobs a `shardable` state is split into when config `shards` > 1, in the one job's order
    (scenarios sorted, then merchant shards): by scenario and by merchant shard k of `shards`, or by
    scenario only (`shard_by: [scenario]`, e.g. 5B.S2, whose groups span merchants). [] = one job."""
    spec = states().get(state_id, {})
    n = int(config.get("shards", 1))
    if not spec.get("shardable") or n <= 1:
        return []
    by = spec.get("shard_by", ["scenario", "merchant"])
    scen = sorted(config["scenarios"]) if "scenario" in by else [None]
    n = n if "merchant" in by else 1
    jobs = [(sid, k, n) for sid in scen for k in range(n)]
    return jobs if len(jobs) > 1 else []


def split(config: dict, state_id: str) -> bool:
    """Whether the state runs as shard jobs and a merge (rules/shards.smk) instead of one job."""
    return bool(shard_jobs(config, state_id))


def shard_dir(state_id: str, k, n, scenario=None) -> str:
    seg, st = state_id.split(".")
    return f"results/{seg}/_shards/{st}/" + (f"{scenario}/" if scenario is not None else "") + f"{k}-of-{n}"


def declare(state_id: str, shard: tuple | None = None, merge: list[Job] | None = None,
            scenario: str | None = None) -> tuple[dict[str, str], dict[str, str]]:
    """(inputs, outputs): name -> repository-relative path.

    A `shardable` state split into jobs: the job for merchant shard k of n (`shard=(k, n)`) of one
    scenario (`scenario`; None = every scenario) reads what the state reads and writes its datasets,
    trace and report under `shard_dir`, for those rows only; the merge (`merge=` the jobs, in the
    one job's order) reads the shards' outputs and writes the state's own outputs, byte for byte what
    one job writes (engine.core.shards). A shardable validation state's shard writes a partial result
    (`partial`) and its merge also reads what the state reads, to finish the checks and write the bundle."""
    try:
        spec = states()[state_id]
    except KeyError:
        raise EngineFailure("CORE.IO.STATE_UNKNOWN", "state not declared in contracts/states.yaml",
                            {"state": state_id}) from None
    seg, st = state_id.split(".")
    base = f"results/{seg}"
    kind = spec.get("kind", "state")
    ins: dict[str, str] = {"receipt": RECEIPT}
    if kind != "gate":
        ins["gate"] = f"{base}/S0/gate_receipt.json"
    for p in spec.get("policies", []):
        s, name = p.split("/")
        ins[f"policy_{s}_{name}"] = f"config/{s}/{name}.yaml"
    for r in spec.get("reference", []):
        ins[f"ref_{r}"] = dataset_manifest(r)
    for d in spec.get("reads", []):
        ins[d] = dataset_manifest(d)
        up = segment_of(d)
        if up != seg:
            ins[f"flag_{up}"] = f"results/{up}/_passed.flag"
    for up in spec.get("upstream", []):
        ins[f"flag_{up}"] = f"results/{up}/_passed.flag"
    for name, rel in spec.get("controls_in", {}).items():          # another state's control file
        ins[name] = rel if rel.startswith("results/") else f"{base}/{rel}"     # results/...: another segment's
    if kind == "validation":
        ins["sealed"] = f"{base}/S0/sealed_inputs.json"
        for up in states().get(f"{seg}.S0", {}).get("upstream", []):     # re-checked before the flag is written
            ins[f"flag_{up}"] = f"results/{up}/_passed.flag"
        for other, o in states().items():
            if other.startswith(seg + ".") and o.get("rng"):
                ins[f"trace_{other.split('.')[1]}"] = f"{base}/rng/{other.split('.')[1]}.trace.json"
    if shard is not None:
        sd = shard_dir(state_id, *shard, scenario)
        outs = {d: f"{sd}/{Path(contracts.entry(d)['path']).name}/{MANIFEST}" for d in produced_by(state_id)}
        outs["report"] = f"{sd}/run_report.json"
        if spec.get("rng"):
            outs["trace"] = f"{sd}/trace.json"
        if kind == "validation":                                    # its checks over its merchants
            outs["partial"] = f"{sd}/partial.json"
        return ins, outs
    if merge is not None:
        if kind != "validation":          # a validation merge re-reads the small inputs, traces, flags
            ins = {"receipt": RECEIPT, "gate": f"{base}/S0/gate_receipt.json"}
        for k, (sid, j, n) in enumerate(merge):
            sd = shard_dir(state_id, j, n, sid)
            ins.update({f"shard{k}_{d}": f"{sd}/{Path(contracts.entry(d)['path']).name}/{MANIFEST}"
                        for d in produced_by(state_id)})
            ins[f"shard{k}_report"] = f"{sd}/run_report.json"
            if spec.get("rng"):
                ins[f"shard{k}_trace"] = f"{sd}/trace.json"
            if kind == "validation":
                ins[f"shard{k}_partial"] = f"{sd}/partial.json"
    outs: dict[str, str] = {d: dataset_manifest(d) for d in produced_by(state_id)}
    outs["report"] = f"{base}/{st}/run_report.json"
    if spec.get("rng"):
        outs["trace"] = f"{base}/rng/{st}.trace.json"
    for name, rel in spec.get("controls", {}).items():             # extra control files (reports)
        outs[name] = f"{base}/{rel}"
    if kind == "gate":
        outs["gate"] = f"{base}/S0/gate_receipt.json"
        outs["sealed"] = f"{base}/S0/sealed_inputs.json"
    if kind == "validation":
        outs["summary"] = f"{base}/{st}/summary.html"
        outs["bundle"] = f"{base}/validation/index.json"
        outs["flag"] = f"{base}/_passed.flag"
    return ins, outs


def _dir_of(p: Path) -> Path:
    return p.parent if p.name == MANIFEST else p


@dataclass
class StateIO:
    """The declared paths of one state, resolved to real paths."""
    state_id: str
    inputs: dict[str, Path]
    outputs: dict[str, Path]
    opened: list[str] = field(default_factory=list)
    shard: tuple[int, int] | None = None     # (k, n): this job is merchant shard k of n of a shardable state
    scenario: str | None = None              # ... of this scenario only (None: every scenario)

    @property
    def segment(self) -> str:
        return self.state_id.split(".")[0]

    def _get(self, table: dict[str, Path], name: str, what: str) -> Path:
        if name not in table:
            raise EngineFailure("CORE.IO.UNDECLARED", f"state {self.state_id} {what} '{name}', which its rule does "
                                "not declare; add it to contracts/states.yaml", {"state": self.state_id, "name": name})
        self.opened.append(name)
        return table[name]

    def input(self, name: str) -> Path:
        """Path of a declared input; a dataset or reference table resolves to its directory."""
        return _dir_of(self._get(self.inputs, name, "reads"))

    def output(self, name: str) -> Path:
        return _dir_of(self._get(self.outputs, name, "writes"))

    def has_input(self, name: str) -> bool:
        return name in self.inputs

    def policy(self, seg: str, name: str) -> Path:
        return self.input(f"policy_{seg}_{name}")

    @classmethod
    def resolve(cls, state_id: str, results: Path, root: Path, shard: tuple[int, int] | None = None,
                merge: list[Job] | None = None, scenario: str | None = None) -> StateIO:
        """The declared paths, with `results/` mapped to `results` and `config/` under `root`."""
        ins, outs = declare(state_id, shard, merge, scenario)

        def where(rel: str) -> Path:
            r = Path(rel)
            return Path(results) / r.relative_to("results") if r.parts[0] == "results" else Path(root) / r
        return cls(state_id, {k: where(v) for k, v in ins.items()}, {k: where(v) for k, v in outs.items()},
                   shard=shard, scenario=scenario)

    @classmethod
    def from_snakemake(cls, state_id: str, smk) -> StateIO:
        w = dict(smk.wildcards.items())
        shard = (int(w["k"]), int(w["n"])) if "k" in w and "n" in w else None
        return cls(state_id, {k: Path(v) for k, v in smk.input.items()},
                   {k: Path(v) for k, v in smk.output.items()}, shard=shard, scenario=w.get("scenario"))
