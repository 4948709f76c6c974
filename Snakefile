# fraud world engine: build with `snakemake --cores all` (preset: --config preset=tiny|dev|full)
import os

from snakemake.utils import min_version, validate

min_version("8.0")

# Jobs import the `engine` package from this checkout, whatever environment runs them
# (a venv with `pip install -e .`, a conda env from envs/engine.yaml, a cluster node).
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (workflow.basedir, os.environ.get("PYTHONPATH")) if p)

configfile: "config/config.yaml"
validate(config, "contracts/config.schema.yaml")

report: "report/workflow.rst"

include: "rules/common.smk"
include: "rules/1A.smk"
include: "rules/1B.smk"


rule all:
    input:
        "results/1B/_passed.flag",
    default_target: True
