"""Run Snakemake with profiles/kubernetes against a stand-in for the Kubernetes API (no cluster needed).

The real executor plugin builds each job's pod spec; the stand-in runs the pod's command the way a
kubelet would: `/bin/sh -c <args>` in an empty directory (the pod's emptyDir `/workdir`), with the
secret's environment variables, and nothing else from this checkout. The persistent volume the
profile mounts at the working directory is this same directory here, so the pod sees the volume
and only the volume. One pod runs at a time (--jobs 1) in a fixed directory, emptied before each
pod, so numba's cache (NUMBA_CACHE_DIR, as a warm image would carry) is reused. A Parquet part left
in a pod's own directory (lost with a real pod) is listed in POD_DIR/../stray_parts.txt.

    python tests/kubernetes/fake_cluster.py POD_DIR [snakemake args...]   (run in the checkout)
"""
from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import kubernetes
import kubernetes.client
import kubernetes.config

POD_DIR = Path(sys.argv[1]).resolve()
PODS: dict[str, subprocess.Popen] = {}
SECRETS: dict[str, dict[str, str]] = {}


class Core:
    def create_namespaced_secret(self, namespace, secret):
        SECRETS[secret.metadata.name] = {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}

    def delete_namespaced_secret(self, name, namespace, body=None):
        SECRETS.pop(name, None)

    def list_namespaced_pod(self, namespace, label_selector):
        return SimpleNamespace(items=[])

    def delete_namespaced_pod(self, *a, **k):
        pass


class Batch:
    def create_namespaced_job(self, namespace, body):
        c = body.spec.template.spec.containers[0]
        mounts = {m.mount_path for m in c.volume_mounts}
        assert mounts == {"/workdir", os.getcwd()}, f"pod mounts {mounts}: the volume must be at the working directory"
        env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"),
               "NUMBA_CACHE_DIR": str(POD_DIR.parent / "numba_cache")}
        for e in c.env or []:
            ref = e.value_from.secret_key_ref
            env[e.name] = SECRETS[ref.name][ref.key]
        stray = sorted(str(p) for p in POD_DIR.rglob("*.parquet")) if POD_DIR.exists() else []
        if stray:       # a dataset part written in the last pod's own directory would be lost with it
            with open(POD_DIR.parent / "stray_parts.txt", "a") as f:
                f.write("\n".join(stray) + "\n")
        shutil.rmtree(POD_DIR, ignore_errors=True)
        POD_DIR.mkdir(parents=True)
        log = open(POD_DIR.parent / f"{body.metadata.name}.log", "w")
        log.write(f"$ {' '.join(c.command)} {c.args[0]} {c.args[1]!r}\n")
        log.flush()
        PODS[body.metadata.name] = subprocess.Popen([*c.command, *c.args], cwd=POD_DIR, env=env,
                                                    stdout=log, stderr=subprocess.STDOUT)
        return body

    def read_namespaced_job_status(self, name, namespace):
        rc = PODS[name].poll()
        return SimpleNamespace(status=SimpleNamespace(failed=int(rc not in (None, 0)), succeeded=int(rc == 0)))

    def delete_namespaced_job(self, name, namespace, **k):
        p = PODS.get(name)
        if p is not None and p.poll() is None:
            p.kill()


kubernetes.config.load_kube_config = lambda *a, **k: None
kubernetes.client.CoreV1Api = Core
kubernetes.client.BatchV1Api = Batch

if __name__ == "__main__":
    from snakemake.cli import main
    main(["--profile", "profiles/kubernetes", "--jobs", "1", *sys.argv[2:]])
