# Segment 5A: intensity surfaces and the scenario calendar (spec/5A.md). One rule per state;
# inputs and outputs come from contracts/states.yaml + the dataset dictionary (rules/common.smk).


rule seg5A_s0_gate:
    input:
        **state_inputs("5A.S0"),
    output:
        **state_outputs("5A.S0"),
    log:
        "logs/5A/S0.log",
    benchmark:
        "logs/benchmarks/5A/S0.tsv"
    conda:
        "../envs/engine.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../scripts/5A/s0_gate.py"


rule seg5A_s1_profile:
    input:
        **state_inputs("5A.S1"),
    output:
        **state_outputs("5A.S1"),
    log:
        "logs/5A/S1.log",
    benchmark:
        "logs/benchmarks/5A/S1.tsv"
    conda:
        "../envs/engine.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    script:
        "../scripts/5A/s1_profile.py"


rule seg5A_s2_shapes:
    input:
        **state_inputs("5A.S2"),
    output:
        **state_outputs("5A.S2"),
    log:
        "logs/5A/S2.log",
    benchmark:
        "logs/benchmarks/5A/S2.tsv"
    conda:
        "../envs/engine.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    script:
        "../scripts/5A/s2_shapes.py"


rule seg5A_s3_baseline:
    input:
        **state_inputs("5A.S3"),
    output:
        **state_outputs("5A.S3"),
    log:
        "logs/5A/S3.log",
    benchmark:
        "logs/benchmarks/5A/S3.tsv"
    conda:
        "../envs/engine.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    script:
        "../scripts/5A/s3_baseline.py"


# config shards > 1: shard jobs and a merge instead (rules/shards.smk)
if not stateio.split(config, "5A.S4"):

    rule seg5A_s4_scenarios:
        input:
            **state_inputs("5A.S4"),
        output:
            **state_outputs("5A.S4"),
        log:
            "logs/5A/S4.log",
        benchmark:
            "logs/benchmarks/5A/S4.tsv"
        conda:
            "../envs/engine.yaml"
        threads: 1
        resources:
            mem_mb=4000,
        script:
            "../scripts/5A/s4_scenarios.py"


rule seg5A_s5_validation:
    input:
        **state_inputs("5A.S5"),
    output:
        **state_outputs("5A.S5"),
    log:
        "logs/5A/S5.log",
    benchmark:
        "logs/benchmarks/5A/S5.tsv"
    conda:
        "../envs/engine.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    script:
        "../scripts/5A/s5_validation.py"
