# Evaluation: metrics per (dataset, model).


rule evaluate:
    input:
        data=f"{RESULTS}/data/{{dataset}}",
        submission=f"{RESULTS}/predict/{{dataset}}/{{model}}/submission.csv",
        timing=f"{RESULTS}/predict/{{dataset}}/{{model}}/timing.csv",
    output:
        metrics=f"{RESULTS}/eval/{{dataset}}/{{model}}/metrics.json",
        per_event=f"{RESULTS}/eval/{{dataset}}/{{model}}/per_event.parquet",
        binned=f"{RESULTS}/eval/{{dataset}}/{{model}}/binned.parquet",
    params:
        section=config["evaluate"],
    log:
        f"{RESULTS}/logs/evaluate/{{dataset}}/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate/{{dataset}}/{{model}}.tsv"
    threads: 1
    resources:
        runtime=30,
        mem_mb=4000,
    conda:
        "../envs/trackpipe.yaml"
    script:
        "../scripts/evaluate.py"
