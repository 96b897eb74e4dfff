# Thin wrapper: one shard of one dataset (all its splits) from the dataset's own config section.
from trackpipe.runtime import configure_threads, log_to_file

configure_threads(snakemake.threads)
log_to_file(snakemake.log[0])

from trackpipe.datasets import build_dataset  # noqa: E402

section = snakemake.params.section
build_dataset(snakemake.wildcards.dataset, section, snakemake.output[0],
              shard=(int(snakemake.wildcards.shard), int(section.get("shards", 1))), plots=False)
