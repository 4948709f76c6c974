# Segment 1A: merchant universe and outlet stubs (spec/1A.md). One rule per state.
P1A = "config/1A/"
R1A = "results/1A/"


def d1a(name):
    return directory(R1A + name)


rule seg1A_s0_universe:
    input:
        receipt=RECEIPT,
        reference=expand("results/reference/{t}.csv", t=REF_TABLES),
        policies=expand(P1A + "{p}.yaml", p=["universe", "hurdle_nb", "crossborder", "currency",
                                            "selection", "allocation", "validation"]),
        priors=[P1A + "merchant_mix.yaml", P1A + "card_market.yaml"],
    output:
        country_ref=d1a("country_ref"),
        merchant_ids=d1a("merchant_ids"),
        merchant_features=d1a("merchant_features"),
        sealed=R1A + "S0/sealed_inputs.json",
        gate=R1A + "S0/gate_receipt.json",
        trace=R1A + "rng/S0.trace.json",
        report=R1A + "S0/run_report.json",
    log: "logs/1A/S0.log"
    benchmark: "logs/benchmarks/1A/S0.tsv"
    threads: 1
    resources: mem_mb=2000
    conda: "../envs/engine.yaml"
    script: "../scripts/1A/s0_universe.py"


rule seg1A_s1_hurdle:
    input:
        receipt=RECEIPT,
        features=R1A + "merchant_features",
    output:
        hurdle=d1a("s1_hurdle"),
        trace=R1A + "rng/S1.trace.json",
        report=R1A + "S1/run_report.json",
    log: "logs/1A/S1.log"
    benchmark: "logs/benchmarks/1A/S1.tsv"
    threads: 1
    resources: mem_mb=2000
    conda: "../envs/engine.yaml"
    script: "../scripts/1A/s1_hurdle.py"


rule seg1A_s2_nb_outlets:
    input:
        receipt=RECEIPT,
        features=R1A + "merchant_features",
        hurdle=R1A + "s1_hurdle",
    output:
        nb=d1a("s2_nb_outlets"),
        trace=R1A + "rng/S2.trace.json",
        report=R1A + "S2/run_report.json",
    log: "logs/1A/S2.log"
    benchmark: "logs/benchmarks/1A/S2.tsv"
    threads: 1
    resources: mem_mb=2000
    conda: "../envs/engine.yaml"
    script: "../scripts/1A/s2_nb_outlets.py"


rule seg1A_s3_candidates:
    input:
        receipt=RECEIPT,
        policy=P1A + "crossborder.yaml",
        merchants=R1A + "merchant_ids",
        features=R1A + "merchant_features",
        hurdle=R1A + "s1_hurdle",
        nb=R1A + "s2_nb_outlets",
        countries=R1A + "country_ref",
    output:
        candidates=d1a("s3_candidate_set"),
        report=R1A + "S3/run_report.json",
    log: "logs/1A/S3.log"
    benchmark: "logs/benchmarks/1A/S3.tsv"
    threads: 1
    resources: mem_mb=2000
    conda: "../envs/engine.yaml"
    script: "../scripts/1A/s3_candidates.py"


rule seg1A_s4_ztp:
    input:
        receipt=RECEIPT,
        policy=P1A + "crossborder.yaml",
        features=R1A + "merchant_features",
        nb=R1A + "s2_nb_outlets",
        candidates=R1A + "s3_candidate_set",
    output:
        ztp=d1a("s4_ztp_target"),
        trace=R1A + "rng/S4.trace.json",
        report=R1A + "S4/run_report.json",
    log: "logs/1A/S4.log"
    benchmark: "logs/benchmarks/1A/S4.tsv"
    threads: 1
    resources: mem_mb=2000
    conda: "../envs/engine.yaml"
    script: "../scripts/1A/s4_ztp.py"


rule seg1A_s5_currency:
    input:
        receipt=RECEIPT,
        policy=P1A + "currency.yaml",
        merchants=R1A + "merchant_ids",
        countries=R1A + "country_ref",
    output:
        weights=d1a("ccy_country_weights"),
        currency=d1a("merchant_currency"),
        sparse=d1a("sparse_flag"),
        report=R1A + "S5/run_report.json",
    log: "logs/1A/S5.log"
    benchmark: "logs/benchmarks/1A/S5.tsv"
    threads: 1
    resources: mem_mb=2000
    conda: "../envs/engine.yaml"
    script: "../scripts/1A/s5_currency.py"


rule seg1A_s6_selection:
    input:
        receipt=RECEIPT,
        policy=P1A + "selection.yaml",
        candidates=R1A + "s3_candidate_set",
        ztp=R1A + "s4_ztp_target",
        weights=R1A + "ccy_country_weights",
        currency=R1A + "merchant_currency",
    output:
        membership=d1a("s6_membership"),
        trace=R1A + "rng/S6.trace.json",
        report=R1A + "S6/run_report.json",
    log: "logs/1A/S6.log"
    benchmark: "logs/benchmarks/1A/S6.tsv"
    threads: 1
    resources: mem_mb=2000
    conda: "../envs/engine.yaml"
    script: "../scripts/1A/s6_selection.py"


rule seg1A_s7_allocation:
    input:
        receipt=RECEIPT,
        policy=P1A + "allocation.yaml",
        nb=R1A + "s2_nb_outlets",
        candidates=R1A + "s3_candidate_set",
        membership=R1A + "s6_membership",
        weights=R1A + "ccy_country_weights",
        currency=R1A + "merchant_currency",
    output:
        allocation=d1a("s7_allocation"),
        trace=R1A + "rng/S7.trace.json",
        report=R1A + "S7/run_report.json",
    log: "logs/1A/S7.log"
    benchmark: "logs/benchmarks/1A/S7.tsv"
    threads: 1
    resources: mem_mb=2000
    conda: "../envs/engine.yaml"
    script: "../scripts/1A/s7_allocation.py"


rule seg1A_s8_catalogue:
    input:
        receipt=RECEIPT,
        merchants=R1A + "merchant_ids",
        hurdle=R1A + "s1_hurdle",
        nb=R1A + "s2_nb_outlets",
        allocation=R1A + "s7_allocation",
    output:
        catalogue=d1a("outlet_catalogue"),
        report=R1A + "S8/run_report.json",
    log: "logs/1A/S8.log"
    benchmark: "logs/benchmarks/1A/S8.tsv"
    threads: 1
    resources: mem_mb=2000
    conda: "../envs/engine.yaml"
    script: "../scripts/1A/s8_catalogue.py"


rule seg1A_s9_validation:
    input:
        receipt=RECEIPT,
        policies=expand(P1A + "{p}.yaml", p=["universe", "hurdle_nb", "crossborder", "currency",
                                            "selection", "allocation", "validation"]),
        priors=[P1A + "merchant_mix.yaml", P1A + "card_market.yaml"],
        datasets=expand(R1A + "{d}", d=["country_ref", "merchant_ids", "merchant_features", "s1_hurdle",
                                        "s2_nb_outlets", "s3_candidate_set", "s4_ztp_target",
                                        "ccy_country_weights", "merchant_currency", "sparse_flag",
                                        "s6_membership", "s7_allocation", "outlet_catalogue"]),
        traces=expand(R1A + "rng/{s}.trace.json", s=["S0", "S1", "S2", "S4", "S6", "S7"]),
    output:
        flag=R1A + "_passed.flag",
        report=report(R1A + "S9/run_report.json", caption="../report/1A_validation.rst", category="1A"),
        summary=report(R1A + "S9/summary.html", caption="../report/1A_summary.rst", category="1A"),
    log: "logs/1A/S9.log"
    benchmark: "logs/benchmarks/1A/S9.tsv"
    threads: 1
    resources: mem_mb=2000
    conda: "../envs/engine.yaml"
    script: "../scripts/1A/s9_validation.py"
