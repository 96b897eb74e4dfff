"""Datasets read from files in the DAG: ingest_shard -> merge -> helix-DBSCAN -> evaluate -> Table 1."""

from __future__ import annotations

import csv
import json
import shutil
import zipfile
from pathlib import Path

import pytest
import yaml
from test_dag import planned_jobs, run

ROOT = Path(__file__).resolve().parents[2]


# The paper's level 4 on TrackML: pixel volumes, 10-50 particles, 5 repeats per source event.
LEVEL4 = {"volumes": [7, 8, 9], "n_particles": [10, 50], "repeats": 5}


def _trackml_zip(workdir, trackml_dir):
    """The real TrackML event in a zip named like Kaggle's training files, inside the scratch workdir."""
    path = workdir / "data" / "trackml" / "train_1.zip"
    path.parent.mkdir(parents=True)
    with zipfile.ZipFile(path, "w") as z:
        for part in ("hits", "particles", "truth"):
            z.write(trackml_dir / f"event000000001-{part}.csv.gz", f"train_1/event000000001-{part}.csv.gz")
    return {"format": "trackml", "path": "data/trackml/train_*.zip"}, ["data/trackml/train_1.zip"], [1], LEVEL4


def _acts_dir(workdir, trackml_dir):
    """The real GNN4ITk ACTS examples event (tests/data/acts, OpenDataDetector volumes: all of them kept)."""
    shutil.copytree(ROOT / "tests" / "data" / "acts" / "gnn4itk_odd" / "exact", workdir / "data" / "acts")
    return {"format": "acts", "path": "data/acts"}, ["data/acts"], [0], dict(LEVEL4, volumes=None)


def _reduced_csv(workdir, trackml_dir):
    """The TrackFormers-style reduced-TrackML CSV sample (tests/data/trackml_reduced): already reduced, so only
    its pixel hits are selected. (With strip hits, evaluate's pixel-restricted score needs the truth `tz`
    that this format lacks and stops with that error.)"""
    (workdir / "data").mkdir()
    shutil.copy(ROOT / "tests" / "data" / "trackml_reduced" / "trackml_10to50_2events.csv", workdir / "data")
    return ({"format": "trackml-reduced", "path": "data/trackml_10to50_2events.csv"},
            ["data/trackml_10to50_2events.csv"], [0, 1], {"volumes": [7, 8, 9], "n_particles": None, "repeats": 1})


# One line per source format; each puts its files under the workdir and returns (source, files, ids, reduce).
SOURCES = {"trackml-zip": _trackml_zip, "acts-dir": _acts_dir, "reduced-csv": _reduced_csv}


def _new_version(path: Path) -> None:
    """Replace a source member by a new version (a bare `touch` of a small file is not one: Snakemake keeps
    its checksum and ignores the mtime): a zip gains an unread member, a CSV a blank line, a directory a file."""
    if path.is_dir():
        (path / "notes.txt").write_text("not an event file\n")
    elif path.suffix == ".zip":
        with zipfile.ZipFile(path, "a") as z:
            z.writestr("notes.txt", "not an event file\n")
    else:
        with open(path, "a") as f:
            f.write("\n")


# A tiny simulated dataset beside the sourced one (data only: no model runs on it).
SIM = {"kind": "redvid", "events": 4, "plots": False, "redvid": {"track_types": ["linear"], "n_tracks": [3, 5]}}


def _config(datasets: dict, evaluated=("real",)) -> dict:
    return {
        "seed": 5,
        "reference_trackml": None,
        "datasets": datasets,
        "models": {"helix": {"family": "helix-dbscan", "datasets": list(evaluated), "gpu": False}},
        "evaluate": {"bootstrap": 5},
    }


def _sourced(source: dict, reduce=LEVEL4, **extra) -> dict:
    # Everything in the test split (one source event), reduced to 5 events.
    return {"source": source, "split": [0, 0, 1], "plots": False, "seed": 3, "reduce": reduce, **extra}


@pytest.mark.slow  # a real Snakemake run of 8 jobs: 15-40 s per case on 2 shared cores
@pytest.mark.parametrize("case", sorted(SOURCES))
def test_sourced_dataset_to_table1(workdir, snakemake, trackml_dir, case):
    exe, env = snakemake
    source, files, ids, reduce = SOURCES[case](workdir, trackml_dir)
    cfg = _config({"real": _sourced(source, reduce), "sim": SIM})
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    run(exe, env, workdir, "--cores", "2")
    info = json.loads((workdir / "results" / "data" / "real" / "dataset.json").read_text())
    assert info["source"] == source["path"] and info["source_format"] == source["format"]
    assert info["source_files"] == files and info["source_ids"] == {"train": [], "val": [], "test": ids}
    assert info["events"]["test"] == len(ids) * (1 if reduce is None else reduce["repeats"])
    with open(workdir / "results" / "tables" / "table1.csv") as f:
        rows = {r["dataset"]: r for r in csv.DictReader(f)}
    score = float(rows["real"]["helix"])
    assert 0.0 <= score <= 1.0
    assert planned_jobs(exe, env, workdir) == set()  # nothing left to do

    # Editing the other dataset reruns nothing of this one; replacing a source file reruns it all.
    cfg["datasets"]["sim"]["events"] = 5
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    assert {r for r, w in planned_jobs(exe, env, workdir) if "real" in w} == set()
    _new_version(workdir / files[0])
    assert {r for r, w in planned_jobs(exe, env, workdir) if "real" in w} >= {"ingest_shard", "merge_dataset",
                                                                              "predict_classical", "evaluate"}


def test_sharded_source_plans_ingest_jobs_only(workdir, snakemake, trackml_dir):
    exe, env = snakemake
    source = _trackml_zip(workdir, trackml_dir)[0]
    sim = {"kind": "redvid", "events": 10, "plots": False, "redvid": {"track_types": ["linear"]}}
    (workdir / "config" / "config.yaml").write_text(
        yaml.safe_dump(_config({"real": _sourced(source, shards=3), "sim": sim}, evaluated=("real", "sim"))))
    jobs = planned_jobs(exe, env, workdir)
    assert {w for r, w in jobs if r == "ingest_shard"} == {f"dataset=real, shard={i}" for i in range(3)}
    assert {w for r, w in jobs if r == "simulate_shard"} == {"dataset=sim, shard=0"}
    assert {w for r, w in jobs if r == "merge_dataset"} == {"dataset=real", "dataset=sim"}


def test_source_matching_nothing_fails_the_plan(workdir, snakemake):
    exe, env = snakemake
    source = {"format": "trackml", "path": "data/trackml/train_*.zip"}
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(_config({"real": _sourced(source)})))
    proc = run(exe, env, workdir, "-n", "--cores", "1", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "datasets.real.source.path" in out and "'data/trackml/train_*.zip' matches no trackml" in out
    # A source without a path fails validation naming the key.
    (workdir / "config" / "config.yaml").write_text(
        yaml.safe_dump(_config({"real": _sourced({"format": "trackml"})})))
    proc = run(exe, env, workdir, "-n", "--cores", "1", check=False)
    assert proc.returncode != 0 and "'path' is a required property" in proc.stdout + proc.stderr
