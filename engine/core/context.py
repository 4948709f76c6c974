"""RunContext: identity, resolved config and logger handed to every state's `run()`."""
from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import EngineFailure
from .identity import dumps
from .publish import publish_text

ROOT = Path(__file__).resolve().parents[2]


def world(config: dict) -> dict:
    """The preset's world settings with `preset_overrides` applied (INTERFACES §5)."""
    preset = config["preset"]
    w = dict(config["presets"][preset])
    w.update((config.get("preset_overrides") or {}).get(preset) or {})
    w["preset"] = preset
    w["horizon_start_utc"] = config["world"]["horizon_start_utc"]
    w["scenarios"] = list(config.get("scenarios") or ["baseline_v1"])
    return w


@dataclass
class RunContext:
    root: Path
    results: Path
    config: dict
    receipt: dict
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("engine"))
    io: Any = None          # engine.core.stateio.StateIO of the running state

    def for_state(self, state_id: str, io=None) -> RunContext:
        """This context with the declared paths of `state_id` (resolved under `results` unless given)."""
        from .stateio import StateIO
        io = io or StateIO.resolve(state_id, self.results, self.root)
        return RunContext(self.root, self.results, self.config, self.receipt, self.logger, io)

    @property
    def identity(self) -> dict:
        return {k: self.receipt[k] for k in ("seed", "parameter_hash", "manifest_fingerprint")}

    @property
    def seed(self) -> int:
        return int(self.receipt["seed"])

    @property
    def world(self) -> dict:
        return world(self.config)

    def cfg(self, *parts: str) -> Path:
        return self.root / "config" / Path(*parts)

    @classmethod
    def load(cls, receipt_path: Path, config: dict, root: Path = ROOT,
             logger: logging.Logger | None = None) -> RunContext:
        receipt_path = Path(receipt_path)
        try:
            receipt = json.loads(receipt_path.read_text())
        except (OSError, ValueError):
            raise EngineFailure("CORE.RUN.RECEIPT_MISSING",
                                "run receipt missing or unreadable; run the run_receipt rule",
                                {"path": str(receipt_path)}) from None
        if receipt.get("preset") != config.get("preset"):
            raise EngineFailure("CORE.RUN.RECEIPT_STALE", "run receipt was made for another preset; "
                                "rerun so the receipt is rebuilt", {"path": str(receipt_path)})
        return cls(root=Path(root), results=receipt_path.parent, config=config, receipt=receipt,
                   logger=logger or logging.getLogger("engine"))


class StateReport:
    """Collects what a state did and writes `results/<SEG>/<state>/run_report.json`."""

    def __init__(self, segment: str, state: str):
        self.segment, self.state = segment, state
        self.t0 = time.monotonic()
        self.data: dict[str, Any] = {"segment": segment, "state": state, "status": "RUNNING",
                                     "counts": {}, "timings_s": {}, "rng": None, "warnings": []}

    def count(self, **kw) -> None:
        self.data["counts"].update({k: (int(v) if not isinstance(v, (bool, float)) else v) for k, v in kw.items()})

    def timing(self, name: str, seconds: float) -> None:
        self.data["timings_s"][name] = round(seconds, 4)

    def rng(self, trace: dict | None) -> None:
        self.data["rng"] = trace if trace else "none: this state uses no randomness"

    def warn(self, msg: str) -> None:
        self.data["warnings"].append(msg)

    def write(self, path: Path, status: str = "PASS") -> None:
        self.data["status"] = status
        self.data["timings_s"]["total"] = round(time.monotonic() - self.t0, 4)
        publish_text(dumps(self.data), path, f"{self.segment}.{self.state}", overwrite=True)


def setup_logging(log_path: str | None) -> logging.Logger:
    log = logging.getLogger("engine")
    log.setLevel(logging.INFO)
    log.handlers.clear()
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="w"))
    for h in handlers:
        h.setFormatter(fmt)
        log.addHandler(h)
    return log


def run_script(snakemake, fn: Callable[[Any, logging.Logger], None]) -> None:
    """Entry for scripts/: set up logging, call `fn`, turn an EngineFailure into one line + exit 1."""
    log = setup_logging(snakemake.log[0] if len(snakemake.log) else None)
    try:
        fn(snakemake, log)
    except EngineFailure as exc:
        log.error(exc.line())
        sys.exit(1)


def state_id_of(rule: str) -> str:
    """`seg1B_s3_requirements` -> `1B.S3`."""
    seg, st = rule.split("_")[:2]
    return f"{seg[3:]}.{st.upper()}"


def begin_state(ctx: RunContext) -> None:
    """Before a state runs: its segment's flag goes (it would certify data about to change); freed
    memory is kept for reuse (engine.core.memory)."""
    from .hashgate import remove_flag
    from .memory import keep_freed_memory
    keep_freed_memory()
    if remove_flag(ctx.results / ctx.io.segment):
        ctx.logger.info(f"{ctx.io.state_id}: removed results/{ctx.io.segment}/_passed.flag until validation reruns")


def run_state(snakemake, run: Callable[[RunContext], None]) -> None:
    """Script entry for a state: context from the run receipt + Snakemake config and the rule's
    declared paths, then `run(ctx)`."""
    def go(smk, log):
        from .stateio import StateIO
        # Snakemake runs scripts in its working directory: config/ is read from there.
        ctx = RunContext.load(smk.input.receipt, dict(smk.config), root=Path.cwd(), logger=log)
        ctx = ctx.for_state(state_id_of(smk.rule), StateIO.from_snakemake(state_id_of(smk.rule), smk))
        begin_state(ctx)
        log.info(f"{smk.rule}: preset={ctx.world['preset']} seed={ctx.seed} "
                 f"parameter_hash={ctx.receipt['parameter_hash'][:12]}")
        t0 = time.monotonic()
        run(ctx)
        log.info(f"{smk.rule}: done in {time.monotonic() - t0:.1f}s")
    run_script(snakemake, go)
