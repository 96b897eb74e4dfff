# Thin wrapper: train one model on one dataset; resumes from its checkpoint when requeued.
from trackpipe.runtime import configure_threads, log_to_file

configure_threads(snakemake.threads)
log_to_file(snakemake.log[0])

from trackpipe.pipeline import train_for_workflow  # noqa: E402

train_for_workflow(
    section=snakemake.params.section,
    train=f"{snakemake.input.data}/train",
    val=f"{snakemake.input.data}/val",
    out=snakemake.output[0],
    seed=snakemake.params.seed,
    threads=snakemake.threads,
    gpus=int(snakemake.resources.get("gpu", 0)),
)
