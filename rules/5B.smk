# Segment 5B: realised arrivals (spec/5B.md). One rule per state; inputs and outputs come from
# contracts/states.yaml + the dataset dictionary (rules/common.smk). mem_mb is the full world's need.


rule seg5B_s0_gate:
    input:
        **state_inputs("5B.S0"),
    output:
        **state_outputs("5B.S0"),
    log:
        "logs/5B/S0.log",
    benchmark:
        "logs/benchmarks/5B/S0.tsv"
    conda:
        "../envs/engine.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../scripts/5B/s0_gate.py"


rule seg5B_s1_grid_grouping:
    input:
        **state_inputs("5B.S1"),
    output:
        **state_outputs("5B.S1"),
    log:
        "logs/5B/S1.log",
    benchmark:
        "logs/benchmarks/5B/S1.tsv"
    conda:
        "../envs/engine.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    script:
        "../scripts/5B/s1_grid_grouping.py"


# config shards > 1 and several scenarios: one job per scenario and a merge (rules/shards.smk)
if not stateio.split(config, "5B.S2"):

    rule seg5B_s2_latent:
        input:
            **state_inputs("5B.S2"),
        output:
            **state_outputs("5B.S2"),
        log:
            "logs/5B/S2.log",
        benchmark:
            "logs/benchmarks/5B/S2.tsv"
        conda:
            "../envs/engine.yaml"
        threads: 1
        resources:
            mem_mb=2000,
        script:
            "../scripts/5B/s2_latent.py"


# config shards > 1: shard jobs and a merge instead (rules/shards.smk)
if not stateio.split(config, "5B.S3"):

    rule seg5B_s3_counts:
        input:
            **state_inputs("5B.S3"),
        output:
            **state_outputs("5B.S3"),
        log:
            "logs/5B/S3.log",
        benchmark:
            "logs/benchmarks/5B/S3.tsv"
        conda:
            "../envs/engine.yaml"
        threads: 1
        resources:
            mem_mb=6000,
        script:
            "../scripts/5B/s3_counts.py"


# config shards > 1: shard jobs and a merge instead (rules/shards.smk)
if not stateio.split(config, "5B.S4"):

    rule seg5B_s4_arrivals:
        input:
            **state_inputs("5B.S4"),
        output:
            **state_outputs("5B.S4"),
        log:
            "logs/5B/S4.log",
        benchmark:
            "logs/benchmarks/5B/S4.tsv"
        conda:
            "../envs/engine.yaml"
        threads: 2
        resources:
            mem_mb=6000,
        script:
            "../scripts/5B/s4_arrivals.py"


if not stateio.split(config, "5B.S5"):

    rule seg5B_s5_validation:
        input:
            **state_inputs("5B.S5"),
        output:
            **state_outputs("5B.S5"),
        log:
            "logs/5B/S5.log",
        benchmark:
            "logs/benchmarks/5B/S5.tsv"
        conda:
            "../envs/engine.yaml"
        threads: 2
        resources:
            mem_mb=6000,
        script:
            "../scripts/5B/s5_validation.py"
