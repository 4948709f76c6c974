# Segment 2B: the routing fabric (spec/2A2B.md; S6, the CDN edge pick, is retired). One rule per state;
# inputs and outputs come from contracts/states.yaml + the dataset dictionary (rules/common.smk).


rule seg2B_s0_gate:
    input:
        **state_inputs("2B.S0"),
    output:
        **state_outputs("2B.S0"),
    log:
        "logs/2B/S0.log",
    benchmark:
        "logs/benchmarks/2B/S0.tsv"
    conda:
        "../envs/engine.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../scripts/2B/s0_gate.py"


rule seg2B_s1_site_weights:
    input:
        **state_inputs("2B.S1"),
    output:
        **state_outputs("2B.S1"),
    log:
        "logs/2B/S1.log",
    benchmark:
        "logs/benchmarks/2B/S1.tsv"
    conda:
        "../envs/engine.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    script:
        "../scripts/2B/s1_site_weights.py"


rule seg2B_s2_alias:
    input:
        **state_inputs("2B.S2"),
    output:
        **state_outputs("2B.S2"),
    log:
        "logs/2B/S2.log",
    benchmark:
        "logs/benchmarks/2B/S2.tsv"
    conda:
        "../envs/engine.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    script:
        "../scripts/2B/s2_alias.py"


rule seg2B_s3_day_effects:
    input:
        **state_inputs("2B.S3"),
    output:
        **state_outputs("2B.S3"),
    log:
        "logs/2B/S3.log",
    benchmark:
        "logs/benchmarks/2B/S3.tsv"
    conda:
        "../envs/engine.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    script:
        "../scripts/2B/s3_day_effects.py"


rule seg2B_s4_group_weights:
    input:
        **state_inputs("2B.S4"),
    output:
        **state_outputs("2B.S4"),
    log:
        "logs/2B/S4.log",
    benchmark:
        "logs/benchmarks/2B/S4.tsv"
    conda:
        "../envs/engine.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    script:
        "../scripts/2B/s4_group_weights.py"


rule seg2B_s5_router_audit:
    input:
        **state_inputs("2B.S5"),
    output:
        **state_outputs("2B.S5"),
    log:
        "logs/2B/S5.log",
    benchmark:
        "logs/benchmarks/2B/S5.tsv"
    conda:
        "../envs/engine.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    script:
        "../scripts/2B/s5_router_audit.py"


rule seg2B_s7_validation:
    input:
        **state_inputs("2B.S7"),
    output:
        **state_outputs("2B.S7"),
    log:
        "logs/2B/S7.log",
    benchmark:
        "logs/benchmarks/2B/S7.tsv"
    conda:
        "../envs/engine.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    script:
        "../scripts/2B/s7_validation.py"
