# Helpers shared by every file in this folder: targets from config, per-job config sections, name patterns.
import re
from pathlib import Path

RESULTS = config.get("results", "results")
DATASETS = sorted(config["datasets"])
MODELS = sorted(config["models"])
SPLITS = ["train", "val", "test"]



def dataset_section(wildcards):
    """Only this dataset's own config: editing another dataset must not rerun this one."""
    return config["datasets"][wildcards.dataset]


def model_section(wildcards):
    """Only this model's own config (without its dataset list, which decides targets, not results)."""
    return {k: v for k, v in config["models"][wildcards.model].items() if k != "datasets"}


def n_shards(dataset):
    return int(config["datasets"][dataset].get("shards", 1))


def source_members_of(datasets):
    """Every sourced dataset's files (in reading order), resolved now so that a path matching nothing
    fails the plan, naming the dataset and the path. Relative paths: relative to the working directory."""
    if not datasets:
        return {}
    from trackpipe.sources import source_members

    out = {}
    for d in datasets:
        src = config["datasets"][d]["source"]
        out[d] = [str(p) for p in source_members(src["format"], src["path"], where=f"datasets.{d}.source.path")]
    return out


def source_inputs(wildcards):
    """The files an ingest job reads: changing or replacing one of them reruns the dataset."""
    return SOURCE_MEMBERS[wildcards.dataset]


def pairs():
    """(dataset, model) pairs the study evaluates, in config order."""
    return [(d, m) for m in MODELS for d in config["models"][m].get("datasets", [])]


def gpus_of(model):
    """GPUs a job of this model asks for: 1 unless the model says `gpu: false` (the cluster profile's
    partition file then sends the job to a partition that has GPUs, or to one without)."""
    return 1 if config["models"][model].get("gpu", True) else 0


def model_gpus(wildcards):
    return gpus_of(wildcards.model)


def job_threads(kind):
    """Threads of a model job (`train` or `predict`) from the config's `threads` (the profile sets none)."""
    return int(config.get("threads", {}).get(kind, {"train": 2, "predict": 1}[kind]))


def job_mem_mb(kind):
    """Memory of a model job (`train` or `predict`) from the config's `mem_mb` (the profile sets none)."""
    return int(config.get("mem_mb", {}).get(kind, 8000))


def train_runtime(wildcards, attempt):
    """Cluster minutes of a training job: the model's `runtime` on the first attempt, n times it on the
    n-th (a retry resumes from the checkpoint of the attempt that ran out of time)."""
    return int(config["models"][wildcards.model].get("runtime", 60)) * attempt


def evaluated_datasets():
    """Datasets some model runs on: the rows of the summary tables (the others are data only)."""
    return sorted({d for d, _ in pairs()})


def trainable(model):
    return config["models"][model]["family"] not in CLASSICAL_FAMILIES


CLASSICAL_FAMILIES = {"helix-dbscan"}


def name_pattern(names):
    """A wildcard regex matching exactly these names (configured datasets or models)."""
    return "|".join(map(re.escape, names)) or "NONE"


# Datasets read from files (`source:`) are ingested, the others simulated: two disjoint name patterns.
SOURCED = [d for d in DATASETS if config["datasets"][d].get("source")]
SIMULATED = [d for d in DATASETS if d not in SOURCED]
SOURCED_PATTERN, SIMULATED_PATTERN = name_pattern(SOURCED), name_pattern(SIMULATED)
SOURCE_MEMBERS = source_members_of(SOURCED)
TRAINED_PATTERN = name_pattern([m for m in MODELS if trainable(m)])
CLASSICAL_PATTERN = name_pattern([m for m in MODELS if not trainable(m)])
ENCDEC_MODELS = [m for m in MODELS if config["models"][m]["family"] == "encdec"]
ENCDEC_PATTERN = name_pattern(ENCDEC_MODELS)


def encdec_protocol_files():
    """The paper-protocol results of every EncDec (dataset, model) pair (truth seeds, seed hits excluded)."""
    return [f"{RESULTS}/eval/{d}/{m}/encdec_protocol.json" for d, m in pairs() if m in ENCDEC_MODELS]


def all_targets():
    out = [f"{RESULTS}/data/{d}" for d in DATASETS]
    out += [f"{RESULTS}/eval/{d}/{m}/metrics.json" for d, m in pairs()]
    out += encdec_protocol_files()
    out += [f"{RESULTS}/tables/table1.md", f"{RESULTS}/tables/table2.md"]
    return out


def report_inputs(wildcards):
    """Every result file the summary tables and figures read."""
    inputs = []
    for d, m in pairs():
        inputs += [f"{RESULTS}/eval/{d}/{m}/metrics.json", f"{RESULTS}/eval/{d}/{m}/per_event.parquet",
                   f"{RESULTS}/eval/{d}/{m}/binned.parquet", f"{RESULTS}/predict/{d}/{m}/timing.csv",
                   f"{RESULTS}/predict/{d}/{m}/submission.csv"]
    inputs += encdec_protocol_files()
    for d in config.get("locality_study", {}).get("datasets", []):
        inputs += [f"{RESULTS}/locality/{d}/clustering.json", f"{RESULTS}/locality/{d}/latency.json"]
    if config.get("bench") is not None:
        inputs.append(f"{RESULTS}/bench/scaling.csv")
    return inputs
