# Reference tables and the run receipt (run identity, DESIGN §3): the first two rules.
import os


rule reference_tables:
    input:
        sorted(glob.glob("config/reference/*.csv")),
    output:
        **{t: stateio.dataset_manifest(t) for t in REF_TABLES},
    log:
        "logs/common/reference_tables.log",
    benchmark:
        "logs/benchmarks/common/reference_tables.tsv"
    conda:
        "../envs/engine.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        config_ref=lambda w, input: os.path.dirname(input[0]),
    script:
        "../scripts/common/reference_tables.py"


rule run_receipt:
    input:
        params=PARAM_FILES,
        reference=[stateio.dataset_manifest(t) for t in REF_TABLES],
    output:
        RECEIPT,
    log:
        "logs/common/run_receipt.log",
    benchmark:
        "logs/benchmarks/common/run_receipt.tsv"
    conda:
        "../envs/engine.yaml"
    threads: 1
    resources:
        mem_mb=500,
    params:
        # the effective config: an override that changes it reruns the receipt and everything after
        effective_config=identity.canonical_config(config),
    script:
        "../scripts/common/run_receipt.py"
