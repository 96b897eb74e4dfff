# Data: simulate each dataset in shards (one job per shard on a cluster), then merge each split.


rule simulate_shard:
    output:
        directory(f"{RESULTS}/data/{{dataset}}/shards/{{shard}}"),
    params:
        section=dataset_section,
        seed=config["seed"],
    log:
        f"{RESULTS}/logs/simulate/{{dataset}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/simulate/{{dataset}}/{{shard}}.tsv"
    threads: 1
    resources:
        runtime=120,
        mem_mb=4000,
    script:
        "../scripts/simulate_shard.py"


rule merge_split:
    input:
        lambda wc: expand(f"{RESULTS}/data/{wc.dataset}/shards/{{shard}}", shard=range(n_shards(wc.dataset))),
    output:
        directory(f"{RESULTS}/data/{{dataset}}/{{split}}"),
    log:
        f"{RESULTS}/logs/merge/{{dataset}}/{{split}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/merge/{{dataset}}/{{split}}.tsv"
    threads: 1
    resources:
        runtime=60,
        mem_mb=4000,
    script:
        "../scripts/merge_split.py"
