from engine.refdata.build import run_from_snakemake

run_from_snakemake(snakemake)  # noqa: F821 (injected by Snakemake)
