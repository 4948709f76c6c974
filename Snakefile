# fraud world engine: build with `snakemake --cores all` (preset: --config preset=tiny|dev|full)
import sys

from snakemake.utils import min_version

min_version("8.0")

# The Snakefile and every job import the `engine` package from this checkout, whatever
# environment runs them (a venv with `pip install -e .`, a conda env, a cluster node).
sys.path.insert(0, workflow.basedir)

from engine.core import resources as wf_resources  # noqa: E402
from engine.core import shared_volume  # noqa: E402
from engine.core import workflow as wf  # noqa: E402

# Parse-time checks (engine/core/workflow.py): the config and every policy are validated, damaged
# datasets un-sealed so their producers rerun, locks of a killed run cleared.
config.update(wf.parse_time(workflow.basedir, config, repair=workflow.is_main_process))


report: "report/workflow.rst"


# Kubernetes (profiles/kubernetes): files on the fs storage volume are used in place (engine/core/shared_volume.py).
shared_volume.before_rules(workflow)


include: "rules/common.smk"
include: "rules/reference.smk"
include: "rules/1A.smk"
include: "rules/1B.smk"
include: "rules/2A.smk"
include: "rules/2B.smk"
include: "rules/3A.smk"
include: "rules/3B.smk"
include: "rules/5A.smk"
include: "rules/5B.smk"
include: "rules/shards.smk"


# mem_mb, runtime and cpus_per_task of every rule above scale with the preset (engine/core/resources.py).
wf_resources.apply(workflow, config["preset"])
shared_volume.after_rules(workflow)


rule all:
    default_target: True
    input:
        "results/5B/_passed.flag",
