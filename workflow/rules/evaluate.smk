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


rule encdec_protocol:
    """EncDec under the paper's protocol (truth seeds, seed hits excluded, teacher-forced next-hit accuracy)."""
    input:
        data=f"{RESULTS}/data/{{dataset}}",
        model=model_dir,
    output:
        f"{RESULTS}/eval/{{dataset}}/{{model}}/encdec_protocol.json",
    log:
        f"{RESULTS}/logs/encdec_protocol/{{dataset}}/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/encdec_protocol/{{dataset}}/{{model}}.tsv"
    threads: job_threads("predict")
    resources:
        runtime=lambda wc, attempt: 60 * attempt,
        mem_mb=job_mem_mb("predict"),
        gpu=model_gpus,
    wildcard_constraints:
        model=ENCDEC_PATTERN,
    conda:
        "../envs/trackpipe.yaml"
    script:
        "../scripts/encdec_protocol.py"
