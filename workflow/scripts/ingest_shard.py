# Thin wrapper: one shard of one dataset read from files (`source:` in its config section), all its splits.
# build_dataset resolves the section's path again, to the same sorted files the plan gave as input.
import logging

from trackpipe.runtime import configure_threads, log_to_file

configure_threads(snakemake.threads)
log_to_file(snakemake.log[0])

from trackpipe.datasets import build_dataset  # noqa: E402

section = snakemake.params.section
shard = (int(snakemake.wildcards.shard), int(section.get("shards", 1)))
logging.getLogger("ingest_shard").info("%s shard %d/%d from %s: %s", snakemake.wildcards.dataset, *shard,
                                       section["source"]["format"], ", ".join(snakemake.input))
summary = build_dataset(snakemake.wildcards.dataset, section, snakemake.output[0], shard=shard, plots=False)
logging.getLogger("ingest_shard").info("read %d of %d source events: %s", sum(map(len, summary["source_ids"].values())),
                                       summary["source_events"], summary["events"])
