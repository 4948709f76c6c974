# Segment 3A: outlets of a (merchant, country) split over the country's time zones (spec/3A3B.md Part A).
# One rule per state; inputs and outputs come from contracts/states.yaml + the dataset dictionary (rules/common.smk).


rule seg3A_s0_gate:
    input:
        **state_inputs("3A.S0"),
    output:
        **state_outputs("3A.S0"),
    log:
        "logs/3A/S0.log",
    benchmark:
        "logs/benchmarks/3A/S0.tsv"
    conda:
        "../envs/engine.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../scripts/3A/s0_gate.py"


rule seg3A_s1_escalation:
    input:
        **state_inputs("3A.S1"),
    output:
        **state_outputs("3A.S1"),
    log:
        "logs/3A/S1.log",
    benchmark:
        "logs/benchmarks/3A/S1.tsv"
    conda:
        "../envs/engine.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../scripts/3A/s1_escalation.py"


rule seg3A_s2_priors:
    input:
        **state_inputs("3A.S2"),
    output:
        **state_outputs("3A.S2"),
    log:
        "logs/3A/S2.log",
    benchmark:
        "logs/benchmarks/3A/S2.tsv"
    conda:
        "../envs/engine.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../scripts/3A/s2_priors.py"


rule seg3A_s3_zone_shares:
    input:
        **state_inputs("3A.S3"),
    output:
        **state_outputs("3A.S3"),
    log:
        "logs/3A/S3.log",
    benchmark:
        "logs/benchmarks/3A/S3.tsv"
    conda:
        "../envs/engine.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../scripts/3A/s3_zone_shares.py"


rule seg3A_s4_zone_counts:
    input:
        **state_inputs("3A.S4"),
    output:
        **state_outputs("3A.S4"),
    log:
        "logs/3A/S4.log",
    benchmark:
        "logs/benchmarks/3A/S4.tsv"
    conda:
        "../envs/engine.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../scripts/3A/s4_zone_counts.py"


rule seg3A_s5_zone_alloc:
    input:
        **state_inputs("3A.S5"),
    output:
        **state_outputs("3A.S5"),
    log:
        "logs/3A/S5.log",
    benchmark:
        "logs/benchmarks/3A/S5.tsv"
    conda:
        "../envs/engine.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../scripts/3A/s5_zone_alloc.py"


rule seg3A_s6_validation:
    input:
        **state_inputs("3A.S6"),
    output:
        **state_outputs("3A.S6"),
    log:
        "logs/3A/S6.log",
    benchmark:
        "logs/benchmarks/3A/S6.tsv"
    conda:
        "../envs/engine.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    script:
        "../scripts/3A/s6_validation.py"
