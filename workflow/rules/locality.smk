# Locality study of a full-event dataset: the slides' clustering comparison, the latency breakdown of
# seed 004 Table 1 and the contrastive tracker's efficiency per region, vs pT and eta.


rule locality_study:
    input:
        data=f"{RESULTS}/data/{{dataset}}",
        model=lambda wc: f"{RESULTS}/models/{training_dataset(wc.dataset)}/{config['locality_study']['model']}",
    output:
        clustering=f"{RESULTS}/locality/{{dataset}}/clustering.json",
        latency=f"{RESULTS}/locality/{{dataset}}/latency.json",
        efficiency=f"{RESULTS}/locality/{{dataset}}/efficiency.json",
        warmup=f"{RESULTS}/locality/{{dataset}}/latency_warmup.json",
    params:
        section={k: v for k, v in config.get("locality_study", {}).items() if k not in ("datasets", "model")},
    log:
        f"{RESULTS}/logs/locality/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/locality/{{dataset}}.tsv"
    threads: job_threads("predict")
    resources:
        runtime=lambda wc, attempt: 60 * attempt,
        mem_mb=job_mem_mb("predict"),
        gpu=lambda wc: gpus_of(config["locality_study"]["model"]),  # the latency table times the model
    conda:
        "../envs/trackpipe.yaml"
    script:
        "../scripts/locality_study.py"
