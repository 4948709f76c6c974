# Segment 1A: merchant universe and outlet stubs (spec/1A.md). One rule per state;
# inputs and outputs come from contracts/states.yaml + the dataset dictionary (rules/common.smk).


rule seg1A_s0_universe:
    input:
        **state_inputs("1A.S0"),
    output:
        **state_outputs("1A.S0"),
    log:
        "logs/1A/S0.log",
    benchmark:
        "logs/benchmarks/1A/S0.tsv"
    conda:
        "../envs/engine.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    script:
        "../scripts/1A/s0_universe.py"


rule seg1A_s1_hurdle:
    input:
        **state_inputs("1A.S1"),
    output:
        **state_outputs("1A.S1"),
    log:
        "logs/1A/S1.log",
    benchmark:
        "logs/benchmarks/1A/S1.tsv"
    conda:
        "../envs/engine.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    script:
        "../scripts/1A/s1_hurdle.py"


rule seg1A_s2_nb_outlets:
    input:
        **state_inputs("1A.S2"),
    output:
        **state_outputs("1A.S2"),
    log:
        "logs/1A/S2.log",
    benchmark:
        "logs/benchmarks/1A/S2.tsv"
    conda:
        "../envs/engine.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    script:
        "../scripts/1A/s2_nb_outlets.py"


rule seg1A_s3_candidates:
    input:
        **state_inputs("1A.S3"),
    output:
        **state_outputs("1A.S3"),
    log:
        "logs/1A/S3.log",
    benchmark:
        "logs/benchmarks/1A/S3.tsv"
    conda:
        "../envs/engine.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    script:
        "../scripts/1A/s3_candidates.py"


rule seg1A_s4_ztp:
    input:
        **state_inputs("1A.S4"),
    output:
        **state_outputs("1A.S4"),
    log:
        "logs/1A/S4.log",
    benchmark:
        "logs/benchmarks/1A/S4.tsv"
    conda:
        "../envs/engine.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    script:
        "../scripts/1A/s4_ztp.py"


rule seg1A_s5_currency:
    input:
        **state_inputs("1A.S5"),
    output:
        **state_outputs("1A.S5"),
    log:
        "logs/1A/S5.log",
    benchmark:
        "logs/benchmarks/1A/S5.tsv"
    conda:
        "../envs/engine.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    script:
        "../scripts/1A/s5_currency.py"


rule seg1A_s6_selection:
    input:
        **state_inputs("1A.S6"),
    output:
        **state_outputs("1A.S6"),
    log:
        "logs/1A/S6.log",
    benchmark:
        "logs/benchmarks/1A/S6.tsv"
    conda:
        "../envs/engine.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    script:
        "../scripts/1A/s6_selection.py"


rule seg1A_s7_allocation:
    input:
        **state_inputs("1A.S7"),
    output:
        **state_outputs("1A.S7"),
    log:
        "logs/1A/S7.log",
    benchmark:
        "logs/benchmarks/1A/S7.tsv"
    conda:
        "../envs/engine.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    script:
        "../scripts/1A/s7_allocation.py"


rule seg1A_s8_catalogue:
    input:
        **state_inputs("1A.S8"),
    output:
        **state_outputs("1A.S8"),
    log:
        "logs/1A/S8.log",
    benchmark:
        "logs/benchmarks/1A/S8.tsv"
    conda:
        "../envs/engine.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    script:
        "../scripts/1A/s8_catalogue.py"


rule seg1A_s9_validation:
    input:
        **state_inputs("1A.S9"),
    output:
        **state_outputs("1A.S9"),
    log:
        "logs/1A/S9.log",
    benchmark:
        "logs/benchmarks/1A/S9.tsv"
    conda:
        "../envs/engine.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    script:
        "../scripts/1A/s9_validation.py"
