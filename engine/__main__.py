"""Command line: `python -m engine verify results/1B` (or `fraudworld verify ...`).

Prints PASS/FAIL for the segment and every upstream segment its gate recorded, and exits 1
on any FAIL. `verify results` checks every segment with a flag or a bundle.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine.core import hashgate
from engine.core.errors import EngineFailure


def _segments(target: Path) -> list[Path]:
    if (target / "validation").is_dir() or (target / hashgate.FLAG).exists():
        segs, todo = [], [target]
        while todo:                                   # the segment and what its gate recorded
            s = todo.pop()
            if s not in segs:
                segs.append(s)
                todo += [s.parent / u for u in hashgate.gate_upstream(s / "S0" / "gate_receipt.json")]
        return sorted(segs)
    return sorted(p for p in target.iterdir() if p.is_dir() and ((p / "validation").is_dir() or (p / hashgate.FLAG).exists()))


def verify(target: Path) -> int:
    segs = _segments(target)
    if not segs:
        print(f"FAIL {target}: no validated segment here (no validation/ or _passed.flag)")
        return 1
    bad = 0
    for seg in segs:
        try:
            digest = hashgate.verify(seg, "CORE.VERIFY")
            print(f"PASS {seg.name} sha256_hex={digest}")
        except EngineFailure as exc:
            bad += 1
            print(f"FAIL {seg.name} {exc.line()}")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m engine", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("verify", help="recompute a segment's bundle digest and sealed checksums against its flag")
    v.add_argument("path", type=Path, help="results/<SEG> or results/")
    args = ap.parse_args(argv)
    return verify(args.path)


if __name__ == "__main__":
    sys.exit(main())
