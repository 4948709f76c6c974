# Shared rules: reference tables and the run receipt (run identity, DESIGN §3).
import glob

REF_TABLES = ["countries", "currencies", "mcc_codes", "cities", "country_geometry"]
PARAM_FILES = sorted(glob.glob("config/**/*.yaml", recursive=True) + glob.glob("config/**/*.csv", recursive=True))
RECEIPT = "results/run_receipt.json"


rule reference_tables:
    input:
        sorted(glob.glob("config/reference/*.csv")),
    output:
        countries="results/reference/countries.csv",
        currencies="results/reference/currencies.csv",
        mcc_codes="results/reference/mcc_codes.csv",
        cities="results/reference/cities.csv",
        country_geometry="results/reference/country_geometry.csv",
    params:
        config_ref="config/reference",
    log: "logs/common/reference_tables.log"
    benchmark: "logs/benchmarks/common/reference_tables.tsv"
    threads: 1
    resources: mem_mb=1000
    conda: "../envs/engine.yaml"
    script: "../scripts/common/reference_tables.py"


rule run_receipt:
    input:
        params=PARAM_FILES,
        reference=expand("results/reference/{t}.csv", t=REF_TABLES),
    output:
        RECEIPT,
    params:
        preset=config["preset"],
        seed=config["seed"],
    log: "logs/common/run_receipt.log"
    benchmark: "logs/benchmarks/common/run_receipt.tsv"
    threads: 1
    resources: mem_mb=500
    conda: "../envs/engine.yaml"
    script: "../scripts/common/run_receipt.py"
