# Models: train (per dataset x model; skipped for trackers that need no training), then predict on test.


rule train:
    wildcard_constraints:
        model=TRAINED_PATTERN,
    input:
        data=f"{RESULTS}/data/{{dataset}}",
    output:
        directory(f"{RESULTS}/models/{{dataset}}/{{model}}"),
    params:
        section=model_section,
        seed=config["seed"],
    log:
        f"{RESULTS}/logs/train/{{dataset}}/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{{dataset}}/{{model}}.tsv"
    threads: job_threads("train")
    resources:
        runtime=train_runtime,
        mem_mb=job_mem_mb("train"),
        gpu=model_gpus,
    conda:
        "../envs/trackpipe.yaml"
    script:
        "../scripts/train.py"


rule predict:
    input:
        data=f"{RESULTS}/data/{{dataset}}",
        model=model_dir,
    output:
        submission=f"{RESULTS}/predict/{{dataset}}/{{model}}/submission.csv",
        timing=f"{RESULTS}/predict/{{dataset}}/{{model}}/timing.csv",
    params:
        section=model_section,
    log:
        f"{RESULTS}/logs/predict/{{dataset}}/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/predict/{{dataset}}/{{model}}.tsv"
    threads: job_threads("predict")
    resources:
        runtime=lambda wc, attempt: 60 * attempt,
        mem_mb=job_mem_mb("predict"),
        gpu=model_gpus,
    wildcard_constraints:
        model=TRAINED_PATTERN,
    conda:
        "../envs/trackpipe.yaml"
    script:
        "../scripts/predict.py"


rule predict_classical:
    """Trackers that need no training (the helix-DBSCAN baseline): CPU only, no model directory."""
    input:
        data=f"{RESULTS}/data/{{dataset}}",
    output:
        submission=f"{RESULTS}/predict/{{dataset}}/{{model}}/submission.csv",
        timing=f"{RESULTS}/predict/{{dataset}}/{{model}}/timing.csv",
    params:
        section=model_section,
    log:
        f"{RESULTS}/logs/predict/{{dataset}}/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/predict/{{dataset}}/{{model}}.tsv"
    threads: 1
    resources:
        runtime=60,
        mem_mb=8000,
    wildcard_constraints:
        model=CLASSICAL_PATTERN,
    conda:
        "../envs/trackpipe.yaml"
    script:
        "../scripts/predict.py"
