"""Events without truth in the DAG (TrackML test events): predicted and timed, listed as 'no truth', never
trained on; models trained on another dataset predict them through `models_from`."""

from __future__ import annotations

import csv
import zipfile

import pytest
import yaml
from test_dag import planned_jobs, run


def _test_zip(workdir, trackml_dir):
    """The real event as Kaggle's test files: hits and cells only, in test.zip."""
    path = workdir / "data" / "trackml" / "test.zip"
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as z:
        for part in ("hits", "cells"):
            z.write(trackml_dir / f"event000000001-{part}.csv.gz", f"test/event000000001-{part}.csv.gz")
    return {"format": "trackml", "path": "data/trackml/test.zip"}


TINY_CLA = {"family": "enccla", "gpu": False, "epochs": 1,
            "architecture": {"d_model": 16, "n_heads": 2, "d_ff": 32, "n_layers": 1, "dropout": 0.0},
            "targets": {"bins": 3}, "training": {"batch_size": 4}}


def _config(workdir, trackml_dir, models_from="sim"):
    real = {"source": _test_zip(workdir, trackml_dir), "split": [0, 0, 1], "plots": False, "reduce": None}
    if models_from:
        real["models_from"] = models_from
    sim = {"kind": "trackml", "events": 3, "seed": 2, "split": [1, 1, 1], "plots": False,
           "trackml": {"volumes": [7, 8, 9], "generator": {"mu": 0.0}},
           "reduce": {"volumes": [7, 8, 9], "n_particles": [5, 10], "repeats": 2}}
    return {
        "seed": 5, "reference_trackml": None, "datasets": {"real": real, "sim": sim},
        "models": {"helix": {"family": "helix-dbscan", "datasets": ["real"], "gpu": False,
                             "params": {"n_curvatures": 9}},
                   "cla": {**TINY_CLA, "datasets": ["real", "sim"]}},
        "evaluate": {"bootstrap": 5},
    }


def test_truthless_dataset_plan_and_errors(workdir, snakemake, trackml_dir):
    exe, env = snakemake
    cfg = _config(workdir, trackml_dir)
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    jobs = planned_jobs(exe, env, workdir)
    # The model is trained once, on the simulation, and predicts both datasets.
    assert {w for r, w in jobs if r == "train"} == {"dataset=sim, model=cla"}
    assert {w for r, w in jobs if r == "predict"} == {"dataset=real, model=cla", "dataset=sim, model=cla"}
    assert {w for r, w in jobs if r == "evaluate"} == {"dataset=real, model=cla", "dataset=sim, model=cla",
                                                       "dataset=real, model=helix"}

    # A model that would have to learn from events without truth: refused when planning, with the fix.
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(_config(workdir, trackml_dir, models_from=None)))
    proc = run(exe, env, workdir, "-n", "--cores", "1", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "models.cla runs on datasets.real, whose files have no truth" in out
    assert "models_from" in out
    bad = _config(workdir, trackml_dir, models_from="nowhere")
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(bad))
    proc = run(exe, env, workdir, "-n", "--cores", "1", check=False)
    assert proc.returncode != 0 and "datasets.real.models_from: 'nowhere' is not a configured dataset" in (
        proc.stdout + proc.stderr)


@pytest.mark.slow  # a real run: simulation, one short training, two trackers on a 5 527-hit event
def test_truthless_dataset_runs_to_the_tables(workdir, snakemake, trackml_dir):
    exe, env = snakemake
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(_config(workdir, trackml_dir)))
    run(exe, env, workdir, "--cores", "2")
    results = workdir / "results"
    # Every hit of the test event gets a track from both trackers, with its time.
    for model in ("helix", "cla"):
        with open(results / "predict" / "real" / model / "submission.csv") as f:
            assert sum(1 for _ in csv.DictReader(f)) == 5527
        with open(results / "predict" / "real" / model / "timing.csv") as f:
            assert len(list(csv.DictReader(f))) == 1
    with open(results / "tables" / "table1.csv") as f:
        table1 = {r["dataset"]: r for r in csv.DictReader(f)}
    assert table1["real"]["helix"] == table1["real"]["cla"] == "no truth"
    assert 0.0 <= float(table1["sim"]["cla"]) <= 1.0
    table2 = (results / "tables" / "table2.md").read_text()
    assert "real" in table2
    assert not (results / "models" / "real").exists()
