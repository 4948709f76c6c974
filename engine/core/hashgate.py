"""HashGate (DESIGN §6): validation bundle, bundle_digest, `_passed.flag` and verify().

The bundle is `results/<SEG>/validation/`, with `index.json` listing every other file and
its SHA-256. bundle_digest = SHA-256 over the indexed files' bytes, concatenated in ASCII
order of their relative paths. A segment may also list its egress files (paths relative
to the results root, with SHA-256) in `validation/egress_checksums.json`; verify() then
re-hashes them too, so a tampered output is refused like a tampered bundle.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from .errors import EngineFailure
from .identity import dumps, sha256_file
from .publish import commit_dir

FLAG = "_passed.flag"
INDEX = "index.json"
EGRESS = "egress_checksums.json"


def bundle_digest(bundle_dir: Path, paths: list[str]) -> str:
    h = hashlib.sha256()
    for rel in sorted(paths):
        with open(bundle_dir / rel, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def flag_line(digest: str) -> str:
    return f"sha256_hex = {digest}\n"


def publish_bundle(segment_dir: Path, files: dict[str, bytes], passed: bool, code_prefix: str) -> str:
    """Stage the bundle, index it, commit it atomically; write the flag only if `passed`.

    Returns the bundle digest. A FAIL bundle is still published (as evidence), without flag.
    """
    segment_dir = Path(segment_dir)
    segment_dir.mkdir(parents=True, exist_ok=True)
    target = segment_dir / "validation"
    flag = segment_dir / FLAG
    tmp = segment_dir / f".validation.tmp.{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    for rel, data in files.items():
        p = tmp / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    index = [{"path": rel, "sha256": hashlib.sha256(files[rel]).hexdigest()} for rel in sorted(files)]
    (tmp / INDEX).write_text(dumps({"files": index}))
    digest = bundle_digest(tmp, list(files))
    # A re-run replaces the previous bundle: the flag goes first so no reader ever sees a
    # flag next to a bundle it does not describe.
    flag.unlink(missing_ok=True)
    if target.exists():
        shutil.rmtree(target)
    commit_dir(tmp, target, code_prefix)
    if passed:
        ftmp = segment_dir / f".{FLAG}.tmp.{os.getpid()}"
        ftmp.write_text(flag_line(digest))
        os.replace(ftmp, flag)
    return digest


def verify(segment_dir: Path, code_prefix: str) -> str:
    """Recompute the digest of `segment_dir`'s bundle and compare it with its flag.

    `code_prefix` is the caller's `<SEG>.S0`. Returns the verified digest.
    """
    segment_dir = Path(segment_dir)
    seg = segment_dir.name
    flag = segment_dir / FLAG
    bundle = segment_dir / "validation"
    if not flag.exists():
        raise EngineFailure(f"{code_prefix}.UPSTREAM_FLAG_MISSING",
                            f"segment {seg} has not passed validation (no _passed.flag); build it first",
                            {"path": str(flag)})
    text = flag.read_text()
    if not text.startswith("sha256_hex = ") or len(text.strip()) != len("sha256_hex = ") + 64:
        raise EngineFailure(f"{code_prefix}.UPSTREAM_HASHGATE_DIGEST_MISMATCH",
                            "flag is malformed; rebuild the upstream segment", {"path": str(flag)})
    claimed = text.strip().split(" = ", 1)[1]
    try:
        index = json.loads((bundle / INDEX).read_text())["files"]
    except (OSError, ValueError, KeyError):
        raise EngineFailure(f"{code_prefix}.UPSTREAM_HASHGATE_DIGEST_MISMATCH",
                            "bundle index missing or unreadable; rebuild the upstream segment",
                            {"path": str(bundle / INDEX)}) from None
    listed = {e["path"] for e in index}
    present = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()} - {INDEX}
    if listed != present:
        raise EngineFailure(f"{code_prefix}.UPSTREAM_HASHGATE_DIGEST_MISMATCH",
                            "bundle files differ from its index; rebuild the upstream segment",
                            {"segment": seg, "unlisted": ",".join(sorted(present - listed)),
                             "missing": ",".join(sorted(listed - present))})
    for e in index:
        if sha256_file(bundle / e["path"]) != e["sha256"]:
            raise EngineFailure(f"{code_prefix}.UPSTREAM_HASHGATE_DIGEST_MISMATCH",
                                "bundle file was modified after validation; rebuild the upstream segment",
                                {"file": str(bundle / e["path"])})
    digest = bundle_digest(bundle, sorted(listed))
    if digest != claimed:
        raise EngineFailure(f"{code_prefix}.UPSTREAM_HASHGATE_DIGEST_MISMATCH",
                            "bundle digest differs from _passed.flag; rebuild the upstream segment",
                            {"segment": seg, "flag": claimed[:16], "computed": digest[:16]})
    if (bundle / EGRESS).exists():
        results = segment_dir.parent
        for e in json.loads((bundle / EGRESS).read_text())["files"]:
            p = results / e["path"]
            if not p.exists() or sha256_file(p) != e["sha256"]:
                raise EngineFailure(f"{code_prefix}.UPSTREAM_HASHGATE_DIGEST_MISMATCH",
                                    "upstream output differs from the checksum its validation sealed; "
                                    "rebuild the upstream segment", {"file": str(p)})
    return digest


def egress_checksums(results: Path, dataset_dirs: list[Path]) -> dict:
    """Checksums of every file of the given dataset directories, relative to `results`."""
    files = []
    for d in dataset_dirs:
        for p in sorted(Path(d).rglob("*.parquet")):
            files.append({"path": p.relative_to(results).as_posix(), "sha256": sha256_file(p)})
    h = hashlib.sha256("".join(f["sha256"] for f in files).encode()).hexdigest()
    return {"files": files, "composite_sha256": h}
