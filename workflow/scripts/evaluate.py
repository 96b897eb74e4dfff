# Thin wrapper: metrics of one (dataset, model) submission, written next to each other in one directory
# (for a test store without truth: the same files, marked "truth": false, with the timing only).
from pathlib import Path

from trackpipe.runtime import configure_threads, log_to_file

configure_threads(snakemake.threads)
log_to_file(snakemake.log[0])

from trackpipe.evaluate import evaluate_for_workflow  # noqa: E402

evaluate_for_workflow(
    f"{snakemake.input.data}/test",
    snakemake.input.submission,
    Path(snakemake.output.metrics).parent,
    timing_path=snakemake.input.timing,
    **snakemake.params.section,
)
