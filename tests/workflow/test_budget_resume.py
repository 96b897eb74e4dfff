"""A training job out of its budget fails after its checkpoint; Snakemake's retry resumes it, and only the
finished model is published (the cluster path of tests/slurm, here with the local executor)."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from test_dag import run

CONFIG = {
    "seed": 3,
    "threads": {"train": 1, "predict": 1},
    "datasets": {"lin": {"kind": "redvid", "events": 40, "seed": 1, "split": [0.6, 0.2, 0.2], "plots": False,
                         "redvid": {"track_types": ["linear"], "n_tracks": [5, 10]}}},
    "models": {"cla": {"family": "enccla", "datasets": ["lin"], "gpu": False, "epochs": 60, "max_minutes": 0.05,
                       "architecture": {"d_model": 16, "n_heads": 2, "d_ff": 32, "n_layers": 1, "dropout": 0.0},
                       "training": {"batch_size": 4, "early_stopping": 0, "budget": "stop"}}},
    "evaluate": {"bootstrap": 5},
}
MODEL = "results/models/lin/cla"


@pytest.mark.slow  # several short training attempts
def test_budget_stop_fails_the_job_and_the_retry_resumes(workdir, snakemake):
    exe, env = snakemake
    (workdir / "budget.yaml").write_text(yaml.safe_dump(CONFIG))
    args = ["--configfile", "budget.yaml", "--cores", "1", MODEL]
    # Without retries: the budget runs out, the job fails with the reason, nothing is published.
    proc = run(exe, env, workdir, *args, "--retries", "0", check=False)
    assert proc.returncode != 0 and not (workdir / MODEL).exists()
    log = (workdir / "results/logs/train/lin/cla.log").read_text()
    assert re.search(r"ERROR trackpipe.pipeline: training of enccla stopped after \d+ of 60 epochs because its "
                     r"max_minutes budget ran out", log)
    assert (workdir / "results/train-work/lin/cla/checkpoint.pt").is_file()
    # With retries: each attempt resumes where the last stopped, until the stopping rule.
    run(exe, env, workdir, *args, "--retries", "30")
    status = json.loads((workdir / MODEL / "status.json").read_text())
    assert status == {"status": "completed", "epochs_done": 60, "epochs": 60, "best_epoch": status["best_epoch"]}
    log = (workdir / "results/logs/train/lin/cla.log").read_text()
    assert re.search(r"resumed from \S+ at epoch \d+", log)

    # on_budget: finish publishes what the budget gave (the demo's choice), with exit status 0.
    CONFIG["models"]["cla"]["on_budget"] = "finish"
    (workdir / "budget.yaml").write_text(yaml.safe_dump(CONFIG))
    run(exe, env, workdir, *args, "--retries", "0", "--forcerun", "train")
    # The same work directory (same training config) already holds the finished run: it is republished.
    assert json.loads((workdir / MODEL / "status.json").read_text())["status"] == "completed"
