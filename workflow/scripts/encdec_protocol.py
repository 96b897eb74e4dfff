# Thin wrapper: EncDec's paper-protocol metrics on the test split (truth seeds, seed hits excluded).
from trackpipe.runtime import configure_threads, log_to_file

configure_threads(snakemake.threads)
log_to_file(snakemake.log[0])

from trackpipe.encdec_protocol import evaluate_encdec_protocol  # noqa: E402
from trackpipe.pipeline import choose_device  # noqa: E402

evaluate_encdec_protocol(
    snakemake.input.model,
    f"{snakemake.input.data}/test",
    snakemake.output[0],
    device=choose_device(int(snakemake.resources.get("gpu", 0))),
    threads=snakemake.threads,
)
