"""Stage entry points shared by the workflow scripts: one call per stage, plain arguments.

A model's workflow section holds the registry section of its family (architecture, targets, training,
tracking, ...) plus workflow keys: `family`, `gpu` (ask the cluster for one), `runtime` (cluster
minutes of the first attempt), `epochs` and `max_minutes` (training budget), `on_budget` (what a
training stopped by `max_minutes` means: `resume`, the default, fails the job so that its retry resumes
from the checkpoint; `finish` publishes the model trained so far), `params` (trackers without training).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

log = logging.getLogger(__name__)

# Trackers that need no training, by model family.
CLASSICAL = {"helix-dbscan"}
# Per-hit classifiers whose softmax posteriors feed the paper's Fig. 7.
POSTERIOR_FAMILIES = {"enccla", "jm"}
WORKFLOW_KEYS = {"family", "gpu", "runtime", "epochs", "max_minutes", "on_budget", "params", "datasets"}
ON_BUDGET = ("resume", "finish")


def choose_device(gpus: int) -> str:
    """CUDA iff the job was given a GPU and torch sees one; the choice is logged."""
    import torch

    if gpus > 0 and torch.cuda.is_available():
        log.info("device: cuda (%d GPU(s) allocated, %d visible)", gpus, torch.cuda.device_count())
        return "cuda"
    if gpus > 0:
        log.warning("device: cpu (a GPU was requested but torch sees none)")
    else:
        log.info("device: cpu (no GPU allocated to this job)")
    return "cpu"


def registry_section(section: dict, device: str) -> dict:
    cfg = {k: v for k, v in section.items() if k not in WORKFLOW_KEYS}
    cfg["training"] = {**cfg.get("training", {}), "device": device}
    return cfg


def train_for_workflow(*, section: dict, train, val, out, seed: int, threads: int, gpus: int = 0,
                       work_root=None) -> None:
    """Train into a persistent work directory (so a requeued job resumes), then publish `out`.

    Snakemake deletes a job's outputs before it runs, so checkpoints live next to them in
    `<results>/train-work/...`; a work directory from a different config is discarded, not reused.
    Only a training that reached its stopping rule (epochs, early stopping) is published; one stopped
    by a signal, or by `max_minutes` unless `on_budget: finish`, raises `TrainingIncomplete` after its
    checkpoint is written, so the job fails and its retry (or the next run) resumes it.
    """
    from .errors import ConfigError
    from .io.atomic import atomic_path
    from .models.registry import resolve_config
    from .train.loop import read_status

    on_budget = section.get("on_budget", "resume")
    if on_budget not in ON_BUDGET:
        raise ConfigError(f"on_budget must be one of {list(ON_BUDGET)}, not {on_budget!r}")
    out = Path(out)
    work = Path(work_root) if work_root else out.parents[2] / "train-work" / out.parent.name / out.name
    device = choose_device(gpus)
    family = section["family"]
    cfg = registry_section(section, device)
    expected = resolve_config(family, cfg)
    if section.get("epochs") is not None:
        expected["training"]["epochs"] = int(section["epochs"])
    expected["seed"] = int(seed)
    saved = work / "config.json"
    if saved.is_file() and json.loads(saved.read_text()) != expected:
        log.info("discarding %s: it holds a run with a different config", work)
        shutil.rmtree(work)
    n_gpus = _visible_gpus() if device == "cuda" else 0
    if device == "cuda" and min(gpus, n_gpus) > 1 and "WORLD_SIZE" not in os.environ:
        _launch_ddp(min(gpus, n_gpus), family, cfg, train, val, work, section, seed, threads)
    else:
        from .train.loop import train as run_training

        run_training(family, train, work, val=val, config=cfg, epochs=section.get("epochs"),
                     max_minutes=section.get("max_minutes"), seed=seed, threads=threads)
    _require_finished(read_status(work), family, work, on_budget)
    with atomic_path(out, is_dir=True) as tmp:
        shutil.copytree(work, tmp, dirs_exist_ok=True)


def _require_finished(status: dict, family: str, work: Path, on_budget: str) -> None:
    """Raise TrainingIncomplete unless the training in `work` may be published (see train_for_workflow)."""
    from .errors import TrainingIncomplete
    from .train.loop import FINISHED

    state = status["status"]
    done = f"{status.get('epochs_done', '?')} of {status.get('epochs', '?')} epochs"
    if state in FINISHED:
        log.info("training %s: %s after %s", family, state, done)
        return
    if state == "time_budget" and on_budget == "finish":
        log.warning("training %s: max_minutes ran out after %s; published as it is (on_budget: finish)", family, done)
        return
    why = {"time_budget": "its max_minutes budget ran out", "signal": "it was sent SIGTERM/SIGUSR1 (time limit or "
           "cancellation)"}.get(state, f"it ended with status {state!r}")
    message = (f"training of {family} stopped after {done} because {why}; the checkpoint in {work} is kept and this "
               f"job is marked failed so that its retry (or the next snakemake run) resumes from it. Set on_budget: "
               f"finish to publish budget-limited models instead.")
    log.error(message)  # into the job's log file too, not only the scheduler's output
    raise TrainingIncomplete(message)


def _visible_gpus() -> int:
    import torch

    return torch.cuda.device_count()


def _launch_ddp(n: int, family, cfg, train, val, work, section, seed, threads) -> None:
    """Several GPUs on one node: one process per GPU through torchrun (the loop picks up WORLD_SIZE)."""
    from .train.loop import read_status

    work.mkdir(parents=True, exist_ok=True)
    cfg_path = work.parent / f"{work.name}.ddp-config.json"
    cfg_path.write_text(json.dumps(cfg))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}", "-m", "trackpipe",
           "train", "--data", str(train), "--val", str(val), "--model", family, "--config", str(cfg_path),
           "--seed", str(seed), "--threads", str(max(int(threads) // n, 1)), "--out", str(work)]
    if section.get("epochs") is not None:
        cmd += ["--epochs", str(section["epochs"])]
    if section.get("max_minutes") is not None:
        cmd += ["--max-minutes", str(section["max_minutes"])]
    log.info("launching DDP on %d GPUs: %s", n, " ".join(cmd))
    proc = subprocess.run(cmd)
    # A signal-stopped run exits non-zero after its checkpoint: the caller reports it from status.json.
    if proc.returncode != 0 and read_status(work)["status"] != "signal":
        raise subprocess.CalledProcessError(proc.returncode, cmd)


def predict_for_workflow(*, section: dict, model_dir, data, out, timing, gpus: int = 0, threads: int = 1) -> dict:
    """Predict tracks for every event of the store `data`; write the submission and per-event timing.

    Classical families (`CLASSICAL`) run their tracker with `section["params"]` and need no `model_dir`
    (also the path of `trackpipe predict --model helix-dbscan`). Classifiers also write
    `posteriors.parquet` beside the submission (softmax of a few hits, Fig. 7), except on a store without
    truth (posteriors record each hit's true class; the notice is logged). Returns the timing summary
    (`evaluate.prediction_timing_summary`; for a classical tracker only when `timing` is written).
    """
    from .io.store import EventStore

    family = section["family"]
    if family in CLASSICAL:
        from .evaluate import prediction_timing_summary, read_timing
        from .tracking.runner import helix_dbscan_tracker, run_tracker

        run_tracker(data, helix_dbscan_tracker(section.get("params")), out, timing_csv=timing, desc=family)
        return {} if timing is None else prediction_timing_summary(read_timing(timing))
    from .predict import predict

    device = choose_device(gpus)
    posteriors = Path(out).with_name("posteriors.parquet") if family in POSTERIOR_FAMILIES else None
    if posteriors is not None and not EventStore(data).has_truth:
        log.info("no posteriors for %s: the store %s has no truth (no true class to show)", family, data)
        posteriors = None
    return predict(model_dir, data, out, timing=timing, posteriors=posteriors, threads=threads, device=device)
