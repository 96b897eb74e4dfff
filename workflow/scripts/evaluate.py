# Thin wrapper: metrics of one (dataset, model) submission, written next to each other in one directory.
from pathlib import Path

from trackpipe.runtime import configure_threads, log_to_file

configure_threads(snakemake.threads)
log_to_file(snakemake.log[0])

from trackpipe.evaluate import evaluate  # noqa: E402

evaluate(
    f"{snakemake.input.data}/test",
    snakemake.input.submission,
    Path(snakemake.output.metrics).parent,
    timing_path=snakemake.input.timing,
    **snakemake.params.section,
)
