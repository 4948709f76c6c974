# Shared rules and the path helpers: every rule's input/output comes from
# contracts/states.yaml + the dataset dictionary, through engine.core.stateio (one owner).
import glob

from engine.core import identity, stateio
from engine.refdata.build import TABLES as REF_TABLES

PARAM_FILES = sorted(glob.glob("config/**/*.yaml", recursive=True) + glob.glob("config/**/*.csv", recursive=True))
RECEIPT = stateio.RECEIPT


def state_inputs(state_id):
    return stateio.declare(state_id)[0]


def state_outputs(state_id):
    """Declared outputs; a validation state's report and summary page go into `--report`."""
    outs = dict(stateio.declare(state_id)[1])
    seg = state_id.split(".")[0]
    if stateio.states()[state_id].get("kind") == "validation":
        outs["report"] = report(outs["report"], caption=f"../report/{seg}_validation.rst", category=seg)
        outs["summary"] = report(outs["summary"], caption=f"../report/{seg}_summary.rst", category=seg)
    return outs


rule reference_tables:
    input:
        sorted(glob.glob("config/reference/*.csv")),
    output:
        **{t: stateio.dataset_manifest(t) for t in REF_TABLES},
    params:
        config_ref="config/reference",
    log:
        "logs/common/reference_tables.log",
    benchmark:
        "logs/benchmarks/common/reference_tables.tsv"
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        "../envs/engine.yaml"
    script:
        "../scripts/common/reference_tables.py"


rule run_receipt:
    input:
        params=PARAM_FILES,
        reference=[stateio.dataset_manifest(t) for t in REF_TABLES],
    output:
        RECEIPT,
    params:
        # the effective config: an override that changes it reruns the receipt and everything after
        effective_config=identity.canonical_config(config),
    log:
        "logs/common/run_receipt.log",
    benchmark:
        "logs/benchmarks/common/run_receipt.tsv"
    threads: 1
    resources:
        mem_mb=500,
    conda:
        "../envs/engine.yaml"
    script:
        "../scripts/common/run_receipt.py"
