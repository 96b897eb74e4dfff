# Data: each dataset is simulated (or, with `source:`, read from files) in shards (one job per shard on
# a cluster, each a contiguous part of the source events), then merged into
# results/data/{dataset}/{train,val,test} (+ dataset.json and validation plots).


rule simulate_shard:
    output:
        directory(f"{RESULTS}/shards/{{dataset}}/{{shard}}"),
    params:
        section=dataset_section,
    log:
        f"{RESULTS}/logs/simulate/{{dataset}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/simulate/{{dataset}}/{{shard}}.tsv"
    threads: 1
    resources:
        runtime=120,
        mem_mb=4000,
    wildcard_constraints:
        dataset=SIMULATED_PATTERN,
    conda:
        "../envs/trackpipe.yaml"
    script:
        "../scripts/simulate_shard.py"


rule ingest_shard:
    """One shard of a dataset read from files: its contiguous part of the source events, reduced and split."""
    input:
        source_inputs,
    output:
        directory(f"{RESULTS}/shards/{{dataset}}/{{shard}}"),
    params:
        section=dataset_section,
    log:
        f"{RESULTS}/logs/ingest/{{dataset}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/ingest/{{dataset}}/{{shard}}.tsv"
    threads: 1
    resources:
        runtime=120,
        mem_mb=4000,
    wildcard_constraints:
        dataset=SOURCED_PATTERN,
    conda:
        "../envs/trackpipe.yaml"
    script:
        "../scripts/ingest_shard.py"


rule merge_dataset:
    input:
        lambda wc: expand(f"{RESULTS}/shards/{wc.dataset}/{{shard}}", shard=range(n_shards(wc.dataset))),
    output:
        report(
            directory(f"{RESULTS}/data/{{dataset}}"),
            patterns=["validation/{name}.png"],
            caption="../report/validation.rst",
            category="Datasets",
            subcategory="{dataset}",
        ),
    params:
        reference_trackml=config.get("reference_trackml"),
    log:
        f"{RESULTS}/logs/merge/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/merge/{{dataset}}.tsv"
    threads: 1
    resources:
        runtime=60,
        mem_mb=4000,
    conda:
        "../envs/trackpipe.yaml"
    script:
        "../scripts/merge_dataset.py"
