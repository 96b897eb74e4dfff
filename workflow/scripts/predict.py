# Thin wrapper: predict tracks for every test event, with per-event timing.
from trackpipe.runtime import configure_threads, log_to_file

configure_threads(snakemake.threads)
log_to_file(snakemake.log[0])

from trackpipe.pipeline import predict_for_workflow  # noqa: E402

predict_for_workflow(
    section=snakemake.params.section,
    model_dir=getattr(snakemake.input, "model", None),
    data=f"{snakemake.input.data}/test",
    out=snakemake.output.submission,
    timing=snakemake.output.timing,
    gpus=int(snakemake.resources.get("gpu", 0)),
    threads=snakemake.threads,
)
