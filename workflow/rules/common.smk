# Helpers shared by the rule files: targets from config, per-rule config sections, wildcard constraints.
import re
from pathlib import Path

RESULTS = config.get("results", "results")
DATASETS = sorted(config["datasets"])
MODELS = sorted(config["models"])
SPLITS = ["train", "val", "test"]


wildcard_constraints:
    dataset="|".join(map(re.escape, DATASETS)) or "NONE",
    model="|".join(map(re.escape, MODELS)) or "NONE",
    split="train|val|test",
    shard=r"\d+",


def dataset_section(wildcards):
    """Only this dataset's own config: editing another dataset must not rerun this one."""
    return config["datasets"][wildcards.dataset]


def model_section(wildcards):
    """Only this model's own config (without its dataset list, which decides targets, not results)."""
    return {k: v for k, v in config["models"][wildcards.model].items() if k != "datasets"}


def n_shards(dataset):
    return int(config["datasets"][dataset].get("shards", 1))


def pairs():
    """(dataset, model) pairs the study evaluates, in config order."""
    return [(d, m) for m in MODELS for d in config["models"][m].get("datasets", [])]


def trainable(model):
    return config["models"][model]["family"] not in CLASSICAL_FAMILIES


CLASSICAL_FAMILIES = {"helix-dbscan"}


def _pattern(names):
    return "|".join(map(re.escape, names)) or "NONE"


TRAINED_PATTERN = _pattern([m for m in MODELS if trainable(m)])
CLASSICAL_PATTERN = _pattern([m for m in MODELS if not trainable(m)])


def all_targets():
    out = [f"{RESULTS}/data/{d}" for d in DATASETS]
    out += [f"{RESULTS}/eval/{d}/{m}/metrics.json" for d, m in pairs()]
    out += [f"{RESULTS}/tables/table1.md", f"{RESULTS}/tables/table2.md"]
    return out
