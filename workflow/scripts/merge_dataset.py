# Thin wrapper: join a dataset's shards into its train/val/test stores and draw its validation plots.
import logging
from pathlib import Path

from trackpipe.runtime import configure_threads, log_to_file

configure_threads(snakemake.threads)
log_to_file(snakemake.log[0])

from trackpipe.datasets import merge_dataset  # noqa: E402

reference = snakemake.params.reference_trackml
if reference and not Path(reference).is_dir():
    logging.getLogger("merge_dataset").warning("reference TrackML directory %s not found: validation plots "
                                               "without the real-event overlay", reference)
    reference = None
merge_dataset(snakemake.input, snakemake.output[0], name=snakemake.wildcards.dataset, reference_trackml=reference)
