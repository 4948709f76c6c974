"""Kubernetes runs (profiles/kubernetes): the default storage is one shared volume, used in place.

Snakemake's kubernetes executor assumes no shared file system: each job runs in a pod, in an empty
directory, and every declared file goes through the default storage provider. A dataset is declared
by its `_manifest.json` while its Parquet parts sit beside it, sealed by it but not declared, so a
provider that copies declared files would leave the parts behind. With the `fs` provider on a
volume that the submitting machine and every pod mount at the same path, no copy is needed: a
job's inputs and outputs are handed to it as their paths on the volume (Snakemake's storage
`retrieve=False`), so a state reads and writes whole dataset directories there.

Logs and benchmarks stay ordinary storage files: Snakemake writes a benchmark, and an empty
placeholder for a log the job did not write where it looked, in the pod's directory, and copies
both to the volume when the job ends. Given the volume paths instead, the benchmark would be
missing from the volume and the placeholder would overwrite the state's log there.

The Snakefile calls `before_rules` before any rule is defined (it runs again in every pod, which
parses the Snakefile too) and `after_rules` once all are. Without a default storage provider (local
and SLURM runs) both do nothing.
"""
from __future__ import annotations

import sys

from .errors import EngineFailure

PROVIDER = "fs"


def _provider(workflow):
    if workflow.storage_settings.default_storage_provider is None:
        return None
    return workflow.storage_registry.default_storage_provider


def before_rules(workflow) -> bool:
    """Storage files from here on are used in place on the volume; True if a provider is set."""
    provider = _provider(workflow)
    if provider is None:
        return False
    name = workflow.storage_settings.default_storage_provider
    if name != PROVIDER:
        exc = EngineFailure("CORE.STORAGE.PROVIDER_UNSUPPORTED",
                            "datasets are directories of Parquet parts sealed by a manifest; only the fs "
                            "storage provider on a volume shared by every job can carry them "
                            "(README, Kubernetes)", {"default_storage_provider": name})
        sys.stderr.write(f"ERROR: {exc.line()}\n")
        raise SystemExit(1)
    provider.retrieve = False
    return True


def after_rules(workflow) -> int:
    """Logs and benchmarks of every rule go back to being copied to the volume; returns how many."""
    if _provider(workflow) is None:
        return 0
    n = 0
    for rule in workflow.rules:
        files = list(rule.log) + ([rule.benchmark] if rule.benchmark is not None else [])
        for f in files:
            obj = getattr(f, "flags", {}).get("storage_object")
            if obj is not None:
                obj.retrieve = True
                n += 1
    return n
