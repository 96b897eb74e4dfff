# Thin wrapper: clustering comparison, latency breakdown and tracker efficiency of one dataset.
from pathlib import Path

from trackpipe.runtime import configure_threads, log_to_file

configure_threads(snakemake.threads)
log_to_file(snakemake.log[0])

from trackpipe.locality.latency import locality_study  # noqa: E402

locality_study(f"{snakemake.input.data}/test", Path(snakemake.output.clustering).parent,
               {**snakemake.params.section, "model_dir": snakemake.input.model, "threads": snakemake.threads})
