# Segment 2A: civil time for every site (spec/2A2B.md). One rule per state;
# inputs and outputs come from contracts/states.yaml + the dataset dictionary (rules/common.smk).


rule seg2A_s0_gate:
    input:
        **state_inputs("2A.S0"),
    output:
        **state_outputs("2A.S0"),
    log:
        "logs/2A/S0.log",
    benchmark:
        "logs/benchmarks/2A/S0.tsv"
    conda:
        "../envs/engine.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../scripts/2A/s0_gate.py"


rule seg2A_s1_tz_lookup:
    input:
        **state_inputs("2A.S1"),
    output:
        **state_outputs("2A.S1"),
    log:
        "logs/2A/S1.log",
    benchmark:
        "logs/benchmarks/2A/S1.tsv"
    conda:
        "../envs/engine.yaml"
    threads: 1
    resources:
        mem_mb=3000,
    script:
        "../scripts/2A/s1_tz_lookup.py"


rule seg2A_s2_site_timezones:
    input:
        **state_inputs("2A.S2"),
    output:
        **state_outputs("2A.S2"),
    log:
        "logs/2A/S2.log",
    benchmark:
        "logs/benchmarks/2A/S2.tsv"
    conda:
        "../envs/engine.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    script:
        "../scripts/2A/s2_site_timezones.py"


rule seg2A_s3_tz_cache:
    input:
        **state_inputs("2A.S3"),
    output:
        **state_outputs("2A.S3"),
    log:
        "logs/2A/S3.log",
    benchmark:
        "logs/benchmarks/2A/S3.tsv"
    conda:
        "../envs/engine.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    script:
        "../scripts/2A/s3_tz_cache.py"


rule seg2A_s4_legality:
    input:
        **state_inputs("2A.S4"),
    output:
        **state_outputs("2A.S4"),
    log:
        "logs/2A/S4.log",
    benchmark:
        "logs/benchmarks/2A/S4.tsv"
    conda:
        "../envs/engine.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../scripts/2A/s4_legality.py"


rule seg2A_s5_validation:
    input:
        **state_inputs("2A.S5"),
    output:
        **state_outputs("2A.S5"),
    log:
        "logs/2A/S5.log",
    benchmark:
        "logs/benchmarks/2A/S5.tsv"
    conda:
        "../envs/engine.yaml"
    threads: 1
    resources:
        mem_mb=3000,
    script:
        "../scripts/2A/s5_validation.py"
