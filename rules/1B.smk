# Segment 1B: where every outlet stands (spec/1B.md). One rule per state;
# inputs and outputs come from contracts/states.yaml + the dataset dictionary (rules/common.smk).


rule seg1B_s0_gate:
    input:
        **state_inputs("1B.S0"),
    output:
        **state_outputs("1B.S0"),
    log:
        "logs/1B/S0.log",
    benchmark:
        "logs/benchmarks/1B/S0.tsv"
    conda:
        "../envs/engine.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../scripts/1B/s0_gate.py"


rule seg1B_s1_tiles:
    input:
        **state_inputs("1B.S1"),
    output:
        **state_outputs("1B.S1"),
    log:
        "logs/1B/S1.log",
    benchmark:
        "logs/benchmarks/1B/S1.tsv"
    conda:
        "../envs/engine.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    script:
        "../scripts/1B/s1_tiles.py"


rule seg1B_s2_weights:
    input:
        **state_inputs("1B.S2"),
    output:
        **state_outputs("1B.S2"),
    log:
        "logs/1B/S2.log",
    benchmark:
        "logs/benchmarks/1B/S2.tsv"
    conda:
        "../envs/engine.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    script:
        "../scripts/1B/s2_weights.py"


rule seg1B_s3_requirements:
    input:
        **state_inputs("1B.S3"),
    output:
        **state_outputs("1B.S3"),
    log:
        "logs/1B/S3.log",
    benchmark:
        "logs/benchmarks/1B/S3.tsv"
    conda:
        "../envs/engine.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    script:
        "../scripts/1B/s3_requirements.py"


rule seg1B_s4_alloc:
    input:
        **state_inputs("1B.S4"),
    output:
        **state_outputs("1B.S4"),
    log:
        "logs/1B/S4.log",
    benchmark:
        "logs/benchmarks/1B/S4.tsv"
    conda:
        "../envs/engine.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    script:
        "../scripts/1B/s4_alloc.py"


rule seg1B_s5_assign:
    input:
        **state_inputs("1B.S5"),
    output:
        **state_outputs("1B.S5"),
    log:
        "logs/1B/S5.log",
    benchmark:
        "logs/benchmarks/1B/S5.tsv"
    conda:
        "../envs/engine.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    script:
        "../scripts/1B/s5_assign.py"


rule seg1B_s6_jitter:
    input:
        **state_inputs("1B.S6"),
    output:
        **state_outputs("1B.S6"),
    log:
        "logs/1B/S6.log",
    benchmark:
        "logs/benchmarks/1B/S6.tsv"
    conda:
        "../envs/engine.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    script:
        "../scripts/1B/s6_jitter.py"


rule seg1B_s7_synthesis:
    input:
        **state_inputs("1B.S7"),
    output:
        **state_outputs("1B.S7"),
    log:
        "logs/1B/S7.log",
    benchmark:
        "logs/benchmarks/1B/S7.tsv"
    conda:
        "../envs/engine.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    script:
        "../scripts/1B/s7_synthesis.py"


rule seg1B_s8_egress:
    input:
        **state_inputs("1B.S8"),
    output:
        **state_outputs("1B.S8"),
    log:
        "logs/1B/S8.log",
    benchmark:
        "logs/benchmarks/1B/S8.tsv"
    conda:
        "../envs/engine.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    script:
        "../scripts/1B/s8_egress.py"


rule seg1B_s9_validation:
    input:
        **state_inputs("1B.S9"),
    output:
        **state_outputs("1B.S9"),
    log:
        "logs/1B/S9.log",
    benchmark:
        "logs/benchmarks/1B/S9.tsv"
    conda:
        "../envs/engine.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    script:
        "../scripts/1B/s9_validation.py"
