# Shard jobs of the `shardable` states (contracts/states.yaml) when config `shards` > 1: rule
# `seg<SEG>_<s>_shard` runs the state's own script for one scenario and merchant shard k of n
# (wildcards; a `shard_by: [scenario]` state has n = 1), and `seg<SEG>_<s>_merge` writes the
# state's outputs from the shards with the bytes of one job (engine/core/shards.py). With
# shards = 1 the segment files' one-job rules run instead.
# A rule's script is run after the loop ends, so its path comes through `params` (set per rule).

# state: (script, threads, mem_mb) of its one-job rule
SHARD_JOBS = {
    "5A.S4": ("5A/s4_scenarios.py", 1, 4000),
    "5B.S2": ("5B/s2_latent.py", 1, 2000),
    "5B.S3": ("5B/s3_counts.py", 1, 6000),
    "5B.S4": ("5B/s4_arrivals.py", 2, 6000),
    # a validation state's shards write partial results; its merge folds them (bundle, flag)
    "5B.S5": ("5B/s5_validation.py", 2, 6000),
}
if set(SHARD_JOBS) != {s for s, e in stateio.states().items() if e.get("shardable")}:
    raise ValueError(
        "rules/shards.smk: SHARD_JOBS must list the shardable states of contracts/states.yaml"
    )


for _state, (_script, _threads, _mem) in SHARD_JOBS.items():
    if not stateio.split(config, _state):
        continue
    _seg, _s = _state.split(".")

    rule:
        name:
            f"seg{_seg}_{_s.lower()}_shard"
        input:
            **state_inputs(_state),
        output:
            **shard_outputs(_state),
        log:
            f"logs/{_seg}/{_s}_shard_{{scenario}}_{{k}}-of-{{n}}.log",
        benchmark:
            f"logs/benchmarks/{_seg}/{_s}_shard_{{scenario}}_{{k}}-of-{{n}}.tsv"
        wildcard_constraints:
            scenario="[A-Za-z0-9_.-]+",
            k="[0-9]+",
            n="[0-9]+",
        conda:
            "../envs/engine.yaml"
        threads: _threads
        resources:
            mem_mb=_mem,
        params:
            script=_script,
        script:
            "../scripts/{params.script}"

    rule:
        name:
            f"seg{_seg}_{_s.lower()}_merge"
        input:
            **merge_inputs(_state),
        output:
            **state_outputs(_state),
        log:
            f"logs/{_seg}/{_s}_merge.log",
        benchmark:
            f"logs/benchmarks/{_seg}/{_s}_merge.tsv"
        conda:
            "../envs/engine.yaml"
        threads: 1
        resources:
            mem_mb=2000,
        params:
            script=f"{_seg}/{_s.lower()}_merge.py",
        script:
            "../scripts/{params.script}"
