# Segment 1B: where every outlet stands (spec/1B.md). One rule per state.
P1B = "config/1B/"
R1B = "results/1B/"


def d1b(name):
    return directory(R1B + name)


rule seg1B_s0_gate:
    input:
        receipt=RECEIPT,
        flag_1A="results/1A/_passed.flag",
        catalogue=R1A + "outlet_catalogue",
        reference=expand("results/reference/{t}.csv", t=REF_TABLES),
        policies=expand(P1B + "{p}.yaml", p=["grid", "tile_weights", "requirements", "alloc_plan", "jitter",
                                            "validation"]),
    output:
        gate=R1B + "S0/gate_receipt.json",
        sealed=R1B + "S0/sealed_inputs.json",
        report=R1B + "S0/run_report.json",
    log: "logs/1B/S0.log"
    benchmark: "logs/benchmarks/1B/S0.tsv"
    threads: 1
    resources: mem_mb=1000
    conda: "../envs/engine.yaml"
    script: "../scripts/1B/s0_gate.py"


rule seg1B_s1_tiles:
    input:
        receipt=RECEIPT,
        gate=R1B + "S0/gate_receipt.json",
        policy=P1B + "grid.yaml",
        geometry="results/reference/country_geometry.csv",
    output:
        tile_index=d1b("tile_index"),
        tile_bounds=d1b("tile_bounds"),
        report=R1B + "S1/run_report.json",
    log: "logs/1B/S1.log"
    benchmark: "logs/benchmarks/1B/S1.tsv"
    threads: 1
    resources: mem_mb=4000
    conda: "../envs/engine.yaml"
    script: "../scripts/1B/s1_tiles.py"


rule seg1B_s2_weights:
    input:
        receipt=RECEIPT,
        policies=[P1B + "tile_weights.yaml", P1B + "grid.yaml"],
        tile_index=R1B + "tile_index",
        cities="results/reference/cities.csv",
    output:
        weights=d1b("tile_weights"),
        report=R1B + "S2/run_report.json",
    log: "logs/1B/S2.log"
    benchmark: "logs/benchmarks/1B/S2.tsv"
    threads: 1
    resources: mem_mb=4000
    conda: "../envs/engine.yaml"
    script: "../scripts/1B/s2_weights.py"


rule seg1B_s3_requirements:
    input:
        receipt=RECEIPT,
        gate=R1B + "S0/gate_receipt.json",
        policy=P1B + "requirements.yaml",
        catalogue=R1A + "outlet_catalogue",
        countries=R1A + "country_ref",
        weights=R1B + "tile_weights",
    output:
        requirements=d1b("s3_requirements"),
        report=R1B + "S3/run_report.json",
    log: "logs/1B/S3.log"
    benchmark: "logs/benchmarks/1B/S3.tsv"
    threads: 1
    resources: mem_mb=2000
    conda: "../envs/engine.yaml"
    script: "../scripts/1B/s3_requirements.py"


rule seg1B_s4_alloc:
    input:
        receipt=RECEIPT,
        policy=P1B + "alloc_plan.yaml",
        requirements=R1B + "s3_requirements",
        weights=R1B + "tile_weights",
    output:
        plan=d1b("s4_alloc_plan"),
        trace=R1B + "rng/S4.trace.json",
        report=R1B + "S4/run_report.json",
    log: "logs/1B/S4.log"
    benchmark: "logs/benchmarks/1B/S4.tsv"
    threads: 1
    resources: mem_mb=4000
    conda: "../envs/engine.yaml"
    script: "../scripts/1B/s4_alloc.py"


rule seg1B_s5_assign:
    input:
        receipt=RECEIPT,
        plan=R1B + "s4_alloc_plan",
    output:
        assignment=d1b("s5_site_tile_assignment"),
        trace=R1B + "rng/S5.trace.json",
        report=R1B + "S5/run_report.json",
    log: "logs/1B/S5.log"
    benchmark: "logs/benchmarks/1B/S5.tsv"
    threads: 1
    resources: mem_mb=2000
    conda: "../envs/engine.yaml"
    script: "../scripts/1B/s5_assign.py"


rule seg1B_s6_jitter:
    input:
        receipt=RECEIPT,
        policy=P1B + "jitter.yaml",
        assignment=R1B + "s5_site_tile_assignment",
        tile_index=R1B + "tile_index",
        tile_bounds=R1B + "tile_bounds",
        geometry="results/reference/country_geometry.csv",
    output:
        jitter=d1b("s6_site_jitter"),
        trace=R1B + "rng/S6.trace.json",
        report=R1B + "S6/run_report.json",
    log: "logs/1B/S6.log"
    benchmark: "logs/benchmarks/1B/S6.tsv"
    threads: 1
    resources: mem_mb=4000
    conda: "../envs/engine.yaml"
    script: "../scripts/1B/s6_jitter.py"


rule seg1B_s7_synthesis:
    input:
        receipt=RECEIPT,
        assignment=R1B + "s5_site_tile_assignment",
        jitter=R1B + "s6_site_jitter",
        tile_bounds=R1B + "tile_bounds",
        catalogue=R1A + "outlet_catalogue",
    output:
        synthesis=d1b("s7_site_synthesis"),
        report=R1B + "S7/run_report.json",
    log: "logs/1B/S7.log"
    benchmark: "logs/benchmarks/1B/S7.tsv"
    threads: 1
    resources: mem_mb=2000
    conda: "../envs/engine.yaml"
    script: "../scripts/1B/s7_synthesis.py"


rule seg1B_s8_egress:
    input:
        receipt=RECEIPT,
        synthesis=R1B + "s7_site_synthesis",
        catalogue=R1A + "outlet_catalogue",
    output:
        site_locations=d1b("site_locations"),
        report=R1B + "S8/run_report.json",
    log: "logs/1B/S8.log"
    benchmark: "logs/benchmarks/1B/S8.tsv"
    threads: 1
    resources: mem_mb=2000
    conda: "../envs/engine.yaml"
    script: "../scripts/1B/s8_egress.py"


rule seg1B_s9_validation:
    input:
        receipt=RECEIPT,
        policies=expand(P1B + "{p}.yaml", p=["grid", "tile_weights", "requirements", "alloc_plan", "jitter",
                                            "validation"]),
        datasets=expand(R1B + "{d}", d=["tile_index", "tile_bounds", "tile_weights", "s3_requirements",
                                        "s4_alloc_plan", "s5_site_tile_assignment", "s6_site_jitter",
                                        "s7_site_synthesis", "site_locations"]),
        traces=expand(R1B + "rng/{s}.trace.json", s=["S4", "S5", "S6"]),
        catalogue=R1A + "outlet_catalogue",
    output:
        flag=R1B + "_passed.flag",
        report=report(R1B + "S9/run_report.json", caption="../report/1B_validation.rst", category="1B"),
        summary=report(R1B + "S9/summary.html", caption="../report/1B_summary.rst", category="1B"),
    log: "logs/1B/S9.log"
    benchmark: "logs/benchmarks/1B/S9.tsv"
    threads: 1
    resources: mem_mb=4000
    conda: "../envs/engine.yaml"
    script: "../scripts/1B/s9_validation.py"
