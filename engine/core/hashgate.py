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
from .publish import clear_stale, commit_dir, tmp_sibling

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
    clear_stale(target)
    clear_stale(flag)
    tmp = tmp_sibling(target)
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
    commit_dir(tmp, target, code_prefix, sealed_only=False)
    if passed:
        ftmp = tmp_sibling(flag)
        ftmp.write_text(flag_line(digest))
        os.replace(ftmp, flag)
    return digest


def remove_flag(segment_dir: Path) -> bool:
    """A segment's flag goes before any of its states reruns: it must never certify other data."""
    flag = Path(segment_dir) / FLAG
    existed = flag.exists()
    flag.unlink(missing_ok=True)
    return existed


def gate_upstream(gate_receipt: Path) -> dict[str, str]:
    """{upstream segment: flag digest} as recorded by a segment's S0 gate receipt."""
    try:
        doc = json.loads(Path(gate_receipt).read_text())
    except (OSError, ValueError):
        return {}
    return {u["segment"]: u["flag_sha256_hex"] for u in doc.get("upstream", [])}


def sealed_checksums(segment_dir: Path) -> dict[str, str]:
    """{path relative to results/: sha256} of the hand-off files the segment's bundle seals."""
    try:
        doc = json.loads((Path(segment_dir) / "validation" / EGRESS).read_text())
    except (OSError, ValueError):
        return {}
    return {f["path"]: f["sha256"] for f in doc.get("files", [])}


def _fail(code_prefix: str, msg: str, **ctx) -> EngineFailure:
    return EngineFailure(f"{code_prefix}.UPSTREAM_HASHGATE_DIGEST_MISMATCH", msg, ctx)


def verify(segment_dir: Path, code_prefix: str, egress: bool = True, _seen: set | None = None) -> str:
    """Recompute the digest of `segment_dir`'s bundle and compare it with its flag; check that
    every upstream flag its gate recorded still verifies with the same digest; with `egress`,
    re-hash the hand-off files the bundle seals. `code_prefix` is the caller's `<SEG>.<STATE>`.
    Returns the verified digest.
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
        raise _fail(code_prefix, "flag is malformed; rebuild the segment", file=str(flag))
    claimed = text.strip().split(" = ", 1)[1]
    try:
        index = json.loads((bundle / INDEX).read_text())["files"]
        listed = {e["path"]: e["sha256"] for e in index}
    except (OSError, ValueError, KeyError, TypeError):
        raise _fail(code_prefix, "bundle index missing or unreadable; rebuild the segment",
                    file=str(bundle / INDEX)) from None
    present = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()} - {INDEX}
    if set(listed) != present:
        raise _fail(code_prefix, "bundle files differ from its index; rebuild the segment", segment=seg,
                    unlisted=",".join(sorted(present - set(listed))), missing=",".join(sorted(set(listed) - present)))
    actual = {rel: sha256_file(bundle / rel) for rel in listed}
    digest = bundle_digest(bundle, sorted(listed))
    changed = sorted(rel for rel in listed if actual[rel] != listed[rel])
    if digest != claimed:
        if changed:         # the index still describes the sealed files: these are what changed
            raise _fail(code_prefix, "bundle file was modified after validation; rebuild the segment",
                        file=str(bundle / changed[0]))
        raise _fail(code_prefix, "bundle digest differs from _passed.flag; rebuild the segment",
                    file=str(flag), flag=claimed, computed=digest)
    if changed:             # files match the flag, so the index itself was edited
        raise _fail(code_prefix, "bundle index was modified after validation; rebuild the segment",
                    file=str(bundle / INDEX), entry=changed[0])
    seen = _seen if _seen is not None else set()
    seen.add(seg)
    for up, want in gate_upstream(segment_dir / "S0" / "gate_receipt.json").items():
        if up in seen:
            continue
        got = verify(segment_dir.parent / up, code_prefix, egress=False, _seen=seen)
        if got != want:
            raise _fail(code_prefix, f"upstream segment {up} changed after {seg} was validated; rebuild {seg}",
                        segment=seg, upstream=up, recorded=want, now=got)
    if egress:
        results = segment_dir.parent
        for rel, sha in sealed_checksums(segment_dir).items():
            p = results / rel
            if not p.exists() or sha256_file(p) != sha:
                raise _fail(code_prefix, "output differs from the checksum its validation sealed; "
                            "rebuild the segment", file=str(p))
    return digest


_VERIFIED: dict[tuple[str, float], str] = {}


def verify_cached(segment_dir: Path, code_prefix: str) -> str:
    """verify() without egress re-hashing, once per process per flag version (readers call it often)."""
    flag = Path(segment_dir) / FLAG
    key = (str(Path(segment_dir).resolve()), flag.stat().st_mtime_ns if flag.exists() else -1)
    if key not in _VERIFIED:
        _VERIFIED[key] = verify(segment_dir, code_prefix, egress=False)
    return _VERIFIED[key]


def egress_checksums(results: Path, dataset_dirs: list[Path]) -> dict:
    """Checksums of every file of the given dataset directories (manifests included), relative to `results`."""
    files = []
    for d in dataset_dirs:
        for p in sorted(q for q in Path(d).rglob("*") if q.is_file()):
            files.append({"path": p.relative_to(results).as_posix(), "sha256": sha256_file(p)})
    h = hashlib.sha256("".join(f["sha256"] for f in files).encode()).hexdigest()
    return {"files": files, "composite_sha256": h}
