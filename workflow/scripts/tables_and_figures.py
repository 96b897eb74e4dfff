# Thin wrapper: regenerate every table and figure from the results tree.
from pathlib import Path

from trackpipe.runtime import configure_threads, log_to_file

configure_threads(snakemake.threads)
log_to_file(snakemake.log[0])

from trackpipe.report import make_all  # noqa: E402

results = Path(snakemake.output.missing).parents[1]  # <results>/tables/missing.json
make_all(results, Path(snakemake.output.missing).parent, snakemake.output.figures,
         datasets=snakemake.params.datasets, models=snakemake.params.models, config=snakemake.params.section,
         encdec_models=snakemake.params.encdec_models)
