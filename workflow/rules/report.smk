# Summaries: every table and figure from whatever results exist (missing ones are listed, never invented).


rule tables_and_figures:
    input:
        report_inputs,
    output:
        tables=report(
            multiext(f"{RESULTS}/tables/table1", ".csv", ".md", ".tex")
            + multiext(f"{RESULTS}/tables/table2", ".csv", ".md", ".tex")
            + (multiext(f"{RESULTS}/tables/table_encdec", ".csv", ".md", ".tex") if encdec_protocol_files() else []),
            caption="../report/tables.rst",
            category="Tables",
        ),
        missing=f"{RESULTS}/tables/missing.json",
        figures=report(
            directory(f"{RESULTS}/figures"),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category="Figures",
        ),
    params:
        section=config.get("report", {}),
        datasets=evaluated_datasets(),
        models=MODELS,
        encdec_models=ENCDEC_MODELS,
    log:
        f"{RESULTS}/logs/report/tables_and_figures.log",
    benchmark:
        f"{RESULTS}/benchmarks/report/tables_and_figures.tsv"
    threads: 1
    resources:
        runtime=30,
        mem_mb=4000,
    conda:
        "../envs/trackpipe.yaml"
    script:
        "../scripts/tables_and_figures.py"


rule bench:
    """Scaling study and matmul reference (trackpipe bench): ms/event vs hits, GFLOP/s, fraction of peak."""
    output:
        scaling=f"{RESULTS}/bench/scaling.csv",
        summary=f"{RESULTS}/bench/bench.json",
    params:
        section=config.get("bench", {}),
    log:
        f"{RESULTS}/logs/bench/bench.log",
    benchmark:
        f"{RESULTS}/benchmarks/bench/bench.tsv"
    threads: 1
    resources:
        runtime=120,
        mem_mb=8000,
    conda:
        "../envs/trackpipe.yaml"
    script:
        "../scripts/bench.py"
