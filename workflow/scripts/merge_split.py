# Thin wrapper: merge one split of every shard of a dataset into one store.
from pathlib import Path

from trackpipe.runtime import configure_threads, log_to_file

configure_threads(snakemake.threads)
log_to_file(snakemake.log[0])

from trackpipe.io.store import merge_stores  # noqa: E402

merge_stores([Path(shard) / snakemake.wildcards.split for shard in snakemake.input], snakemake.output[0])
