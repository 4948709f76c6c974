"""The first rule: write results/run_receipt.json (DESIGN §3)."""
from __future__ import annotations

from pathlib import Path

from .context import ROOT, run_script
from .identity import build_receipt, dumps
from .publish import publish_text


def write(config: dict, out: Path, reference_dirs: list[Path], root: Path = ROOT) -> dict:
    """Reference tables are hashed under their logical path results/reference/<name>/<part>;
    the effective config (after every override) is hashed too."""
    extra = {}
    for d in reference_dirs:
        d = Path(d).parent if Path(d).name == "_manifest.json" else Path(d)
        for f in sorted(d.rglob("*.parquet")):
            extra[f"results/reference/{d.name}/{f.relative_to(d).as_posix()}"] = f
    rec = build_receipt(root, config["seed"], config["preset"], config["run"]["created_utc"], extra, config=config)
    publish_text(dumps(rec), Path(out), "CORE.RUN", overwrite=True)
    return rec


def run_from_snakemake(snakemake) -> None:
    def go(smk, log):
        rec = write(dict(smk.config), Path(smk.output[0]), list(smk.input.reference), root=Path.cwd())
        log.info(f"run receipt: parameter_hash={rec['parameter_hash'][:16]} "
                 f"manifest_fingerprint={rec['manifest_fingerprint'][:16]}")
    run_script(snakemake, go)
