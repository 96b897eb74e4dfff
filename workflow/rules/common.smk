# Helpers shared by every file in this folder: targets from config, per-job config sections, name patterns.
import re
from pathlib import Path

RESULTS = config.get("results", "results")
DATASETS = sorted(config["datasets"])
MODELS = sorted(config["models"])
SPLITS = ["train", "val", "test"]



# Dataset keys that decide where a dataset's models come from, not its events (kept out of its jobs' params).
DATASET_WORKFLOW_KEYS = {"models_from"}


def dataset_section(wildcards):
    """Only this dataset's own config: editing another dataset must not rerun this one."""
    return {k: v for k, v in config["datasets"][wildcards.dataset].items() if k not in DATASET_WORKFLOW_KEYS}


def training_dataset(dataset):
    """The dataset whose trained models predict on `dataset`: itself, or its `models_from`."""
    return config["datasets"][dataset].get("models_from", dataset)


def model_dir(wildcards):
    """The trained model a predict-like job of (dataset, model) uses."""
    return f"{RESULTS}/models/{training_dataset(wildcards.dataset)}/{wildcards.model}"


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


def truthless_datasets():
    """Sourced datasets whose files have no truth (e.g. TrackML test events), found from the file listing.

    Their events are predicted and timed, not scored; nothing that needs truth is planned for them, and a
    model that must be trained on one is a plan-time error (train it elsewhere: `models_from`)."""
    if not SOURCED:
        return set()
    from trackpipe.sources import source_has_truth

    return {d for d in SOURCED if not source_has_truth(config["datasets"][d]["source"]["format"], SOURCE_MEMBERS[d])}


def check_plan():
    """Plan-time errors for what could only fail later: naming the dataset, the model and the fix."""
    for d in DATASETS:
        other = config["datasets"][d].get("models_from")
        if other is not None and other not in config["datasets"]:
            raise ValueError(f"datasets.{d}.models_from: {other!r} is not a configured dataset")
        if other is not None and other in TRUTHLESS:
            raise ValueError(f"datasets.{d}.models_from: {other!r} has no truth, so no model can be trained on it")
    for d in sorted(TRUTHLESS):
        if config["datasets"][d].get("reduce"):
            raise ValueError(f"datasets.{d}: its files have no truth, so it cannot be reduced (reduce samples "
                             f"particles); set reduce: null")
        for m in MODELS:
            if d in config["models"][m].get("datasets", []) and trainable(m) and training_dataset(d) == d:
                raise ValueError(f"models.{m} runs on datasets.{d}, whose files have no truth: it cannot be trained "
                                 f"there; set datasets.{d}.models_from to a dataset with truth to predict with the "
                                 f"models trained on it")
    for d in config.get("locality_study", {}).get("datasets", []):
        if d in TRUTHLESS:
            raise ValueError(f"locality_study.datasets: {d} has no truth (the study's metrics need it)")


TRUTHLESS = truthless_datasets()
check_plan()


def encdec_protocol_files():
    """The paper-protocol results of every EncDec (dataset, model) pair (truth seeds, seed hits excluded)."""
    return [f"{RESULTS}/eval/{d}/{m}/encdec_protocol.json" for d, m in pairs()
            if m in ENCDEC_MODELS and d not in TRUTHLESS]


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
