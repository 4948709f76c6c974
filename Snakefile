# fraud world engine: build with `snakemake --cores all` (preset: --config preset=tiny|dev|full)
from snakemake.utils import min_version, validate

min_version("8.0")

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
