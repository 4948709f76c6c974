# Segment 3B: virtual merchants, settlement nodes, CDN edges and their alias blob (spec/3A3B.md Part B).
# One rule per state; inputs and outputs come from contracts/states.yaml + the dataset dictionary (rules/common.smk).


rule seg3B_s0_gate:
    input:
        **state_inputs("3B.S0"),
    output:
        **state_outputs("3B.S0"),
    log:
        "logs/3B/S0.log",
    benchmark:
        "logs/benchmarks/3B/S0.tsv"
    conda:
        "../envs/engine.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../scripts/3B/s0_gate.py"


rule seg3B_s1_virtual:
    input:
        **state_inputs("3B.S1"),
    output:
        **state_outputs("3B.S1"),
    log:
        "logs/3B/S1.log",
    benchmark:
        "logs/benchmarks/3B/S1.tsv"
    conda:
        "../envs/engine.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    script:
        "../scripts/3B/s1_virtual.py"


rule seg3B_s2_edges:
    input:
        **state_inputs("3B.S2"),
    output:
        **state_outputs("3B.S2"),
    log:
        "logs/3B/S2.log",
    benchmark:
        "logs/benchmarks/3B/S2.tsv"
    conda:
        "../envs/engine.yaml"
    threads: 1
    resources:
        mem_mb=3000,
    script:
        "../scripts/3B/s2_edges.py"


rule seg3B_s3_alias:
    input:
        **state_inputs("3B.S3"),
    output:
        **state_outputs("3B.S3"),
    log:
        "logs/3B/S3.log",
    benchmark:
        "logs/benchmarks/3B/S3.tsv"
    conda:
        "../envs/engine.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../scripts/3B/s3_alias.py"


rule seg3B_s4_validation:
    input:
        **state_inputs("3B.S4"),
    output:
        **state_outputs("3B.S4"),
    log:
        "logs/3B/S4.log",
    benchmark:
        "logs/benchmarks/3B/S4.tsv"
    conda:
        "../envs/engine.yaml"
    threads: 1
    resources:
        mem_mb=3000,
    script:
        "../scripts/3B/s4_validation.py"
