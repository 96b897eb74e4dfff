"""The one training loop of the encoder families (and the later ones that plug in a model + loss).

Model directory contract (everything `predict` needs):

    config.json         the resolved model section (plus seed) this run used
    preprocessing.json  input normalisation, bin edges, target normalisation, clustering parameters
    checkpoint.pt       weights (last and best), optimiser, schedule, epoch/step, RNG states, history
    history.csv         one row per epoch
    train.log           the run's log

Exact resume: the batch order of an epoch is a function of (seed, epoch), and the checkpoint holds
every other piece of state (optimiser, schedule, RNG states, early-stopping counters, the statistics of
a partly done epoch), so a run stopped at any checkpoint and resumed ends with the same weights as an
uninterrupted one. Checkpoints are written after every epoch, when the time budget runs out, and when
the process is asked to stop (SIGTERM, or SIGUSR1, which batch schedulers send before a time limit
kills a job): the current batch finishes, the checkpoint is written, and `train` returns with status
`signal`. `status.json` in the model directory records how the last call ended.
"""

from __future__ import annotations

import contextlib
import logging
import math
import resource
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from ..device import rng_state, seed_everything, select_device, set_rng_state, set_threads
from ..errors import ConfigError, DataError
from ..io.atomic import atomic_path, write_csv, write_json
from ..io.store import EventStore
from ..models.heads import epoch_metrics
from ..models.registry import MODELS, build_model, resolve_config
from ..progress import progress
from ..targets import Preprocessing, fit_preprocessing
from .data import batch_plan, collate, load_tables
from .augment import RAW_PARAMS, Augmentation, augment_settings
from .locality import load_arrays, locality_settings
from .distributed import DistInfo, any_rank, barrier, init_distributed, shard, sum_stats
from .schedule import LRSchedule

log = logging.getLogger("trackpipe.train")

CHECKPOINT = "checkpoint.pt"


@dataclass
class TrainResult:
    out_dir: Path
    epochs_done: int
    best_epoch: int
    best_val_loss: float
    status: str  # completed | early_stopping | time_budget | signal | stopped
    history: pd.DataFrame

    @property
    def finished(self) -> bool:
        """Whether training reached its stopping rule (epochs or early stopping)."""
        return self.status in FINISHED


FINISHED = ("completed", "early_stopping")
STATUS_FILE = "status.json"


class StopSignals:
    """While active, SIGTERM and SIGUSR1 ask the loop to checkpoint and stop instead of killing it.

    Slurm sends SIGTERM when a job is cancelled or reaches its time limit (SIGKILL follows after
    KillWait) and SIGUSR1 ahead of the limit when asked to (`sbatch --signal=USR1@120`). Handlers can
    only be installed from the main thread; elsewhere the signals keep their default action.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGUSR1)

    def __init__(self):
        self.received: int | None = None
        self._previous = {}

    def _handle(self, signum, _frame):
        self.received = signum
        log.warning("received %s: stopping after the current batch and writing a checkpoint",
                    signal.Signals(signum).name)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}


def split_events(event_ids: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic train/validation split of one store's events (by event, seeded)."""
    n = len(event_ids)
    if n < 2:
        raise DataError(f"need at least 2 events to hold out a validation split, store has {n}")
    n_val = min(n - 1, max(1, int(round(val_fraction * n))))
    perm = np.random.default_rng([seed, 7919]).permutation(n)
    return np.sort(event_ids[perm[n_val:]]), np.sort(event_ids[perm[:n_val]])


def amp_settings(amp: str, device: torch.device) -> tuple[bool, torch.dtype]:
    amp = str(amp).lower()
    if amp == "auto":
        return device.type == "cuda", torch.bfloat16
    if amp == "bf16":
        return True, torch.bfloat16
    if amp == "fp16":
        if device.type != "cuda":
            raise ConfigError("training.amp fp16 needs CUDA; use bf16 or off on CPU")
        return True, torch.float16
    if amp == "off":
        return False, torch.float32
    raise ConfigError(f"training.amp must be auto, bf16, fp16 or off, not {amp!r}")


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


@contextlib.contextmanager
def _log_to(path: Path, enabled: bool):
    if not enabled:
        yield
        return
    handler = logging.FileHandler(path, mode="a")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("trackpipe")
    root.addHandler(handler)
    old = root.level
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(old)
        handler.close()


def _tensorboard(out_dir: Path, enabled: bool):
    """A SummaryWriter under out_dir/tensorboard when the tensorboard package is installed, else None."""
    if not enabled:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(out_dir / "tensorboard"))


def _save_checkpoint(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def run_batches(model, loss_fn, data, batches, *, device, amp: tuple[bool, torch.dtype], train: bool,
                optimizer=None, schedule=None, scaler=None, grad_clip: float = 0.0, stats: dict | None = None,
                start: int = 0, should_stop: Callable[[int], bool] | None = None, desc: str = "",
                collate_fn: Callable | None = None, augment_key: tuple | None = None):
    """Run batches[start:], training or evaluating; returns (summed statistics, index of the next batch).

    collate_fn(data, indices, device, train=...): the model's own batch layout (data mode), e.g. the
    U-Net's voxels (training-only interpolated points); default: padded hits (`data.collate`).

    augment_key: training batches of augmented data draw their transformations from a generator seeded
    by (*augment_key, batch index), so a resumed epoch repeats them exactly.

    Statistics: `loss_sum` (loss x valid hits), `hits`, plus whatever the model's loss reports.
    """
    stats = dict(stats or {})
    enabled, dtype = amp
    step = start
    for step in progress(range(start, len(batches)), desc=desc, unit="batch"):
        if collate_fn is not None:
            batch = collate_fn(data, batches[step], device, train=train)
        else:
            rng = np.random.default_rng([*augment_key, step]) if train and augment_key is not None else None
            batch = collate(data, batches[step], device, rng=rng)
        with torch.autocast(device.type, dtype=dtype, enabled=enabled), torch.set_grad_enabled(train):
            out = model(batch)
            loss, s = loss_fn(out, batch)
        if train:
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
            else:
                loss.backward()
            if grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            schedule.step_batch()
        n = float(batch["valid"].sum())
        s = {**s, "loss_sum": float(loss.detach()) * n, "hits": n}
        for k, v in s.items():
            stats[k] = stats.get(k, 0.0) + v
        if should_stop is not None and should_stop(step + 1):
            return stats, step + 1
    return stats, len(batches)


def _row(epoch, train_stats, val_stats, lr, seconds, peak_mb) -> dict:
    row = {"epoch": epoch, "train_loss": train_stats["loss_sum"] / max(train_stats["hits"], 1),
           "val_loss": val_stats["loss_sum"] / max(val_stats["hits"], 1)}
    row.update({f"train_{k}": v for k, v in epoch_metrics(train_stats).items()})
    row.update({f"val_{k}": v for k, v in epoch_metrics(val_stats).items()})
    row.update(lr=lr, epoch_seconds=seconds, train_hits_per_second=train_stats["hits"] / max(seconds, 1e-9),
               peak_memory_mb=peak_mb)
    return row


def train(model_name: str, data, out_dir, *, val=None, config: dict | None = None, epochs: int | None = None,
          max_minutes: float | None = None, seed: int = 0, threads: int | None = None,
          stop: Callable[[int, int], bool] | None = None) -> TrainResult:
    """Train (or resume training of) model `model_name` on the event store `data`.

    val: a separate validation store; without it `training.val_fraction` of `data` is held out.
    config: the model's config section (see models.registry); epochs overrides training.epochs.
    max_minutes: wall-clock budget. With `training.budget: schedule` (the default) it is the length of the
        run, summed over resumed calls: the learning-rate schedule spans it instead of `training.epochs`,
        the epoch it ends in is validated as a (partial) last epoch, and the run ends `completed`. With
        `training.budget: stop` it is this call's limit on an epoch-based run: when it runs out a resumable
        checkpoint is written and the model directory is finalised with the best weights so far (status
        `time_budget`).
        SIGTERM / SIGUSR1 during the call write a checkpoint and return status `signal` (no finalising:
        a scheduler is about to kill the process).
    stop(epoch, next_step): optional hook that halts like a kill right after a checkpoint (tests).
    """
    t_start = time.monotonic()
    out_dir = Path(out_dir)
    cfg = resolve_config(model_name, config)
    if epochs is not None:
        cfg["training"]["epochs"] = int(epochs)
    cfg["seed"] = int(seed)
    tr = cfg["training"]
    set_threads(threads)
    device = select_device(tr["device"])
    info = init_distributed(device)
    ckpt_path = out_dir / CHECKPOINT
    resume = ckpt_path.is_file()
    if resume:
        import json

        saved = json.loads((out_dir / "config.json").read_text())
        if saved != cfg:
            raise ConfigError(f"{out_dir} holds a run with a different config; use a new --out directory "
                              "(or the same config to resume)")
    if info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / STATUS_FILE).unlink(missing_ok=True)  # a crash must not leave the last call's status behind
    barrier(info)
    with _log_to(out_dir / "train.log", info.is_main), StopSignals() as signals:
        result = _train(cfg, data, val, out_dir, ckpt_path, resume, device, info, max_minutes, stop, t_start,
                        signals)
    if info.is_main:
        write_json(out_dir / STATUS_FILE, {"status": result.status, "epochs_done": result.epochs_done,
                                           "epochs": int(tr["epochs"]), "best_epoch": result.best_epoch})
    return result


def read_status(out_dir) -> dict:
    """How the last training call on `out_dir` ended (see `train`), or status `missing`."""
    import json

    path = Path(out_dir) / STATUS_FILE
    return json.loads(path.read_text()) if path.is_file() else {"status": "missing"}


BUDGET_MODES = ("schedule", "stop")


def _train(cfg, data, val, out_dir, ckpt_path, resume, device, info: DistInfo, max_minutes, stop, t_start,
           signals: StopSignals):
    tr, seed = cfg["training"], cfg["seed"]
    if tr["budget"] not in BUDGET_MODES:
        raise ConfigError(f"training.budget must be one of {list(BUDGET_MODES)}, not {tr['budget']!r}")
    budget_s = None if max_minutes is None else 60.0 * float(max_minutes)
    budget_run = budget_s is not None and tr["budget"] == "schedule"  # the budget is the run's length
    seed_everything(seed)
    store = EventStore(data)
    if val is None:
        train_ids, val_ids = split_events(store.event_ids, tr["val_fraction"], seed)
        val_store = store
    else:
        train_ids, val_store = store.event_ids, EventStore(val)
        val_ids = val_store.event_ids
    if resume:
        import json

        prep = Preprocessing.from_json(json.loads((out_dir / "preprocessing.json").read_text()))
    else:
        hits, particles = load_tables(store, train_ids)
        prep = fit_preprocessing(hits, particles, kind=cfg["targets"]["kind"], bins=cfg["targets"]["bins"],
                                 inputs=cfg["targets"]["inputs"])
        if info.is_main:
            write_json(out_dir / "config.json", cfg)
            write_json(out_dir / "preprocessing.json", prep.to_json())
    locality = locality_settings(cfg)
    cache = out_dir / "locality-cache" if locality is not None else None  # tables reused across epochs / resumes
    augment = augment_settings(tr)
    # Locality models' clusters are computed once per event: they get transformed copies made at load time;
    # the others a fresh transformation in every batch.
    static = augment if locality is not None else None
    if static is not None and static["copies"] < 1:
        log.info("augmentation: off; %s's locality clusters are computed once per event, so it augments through "
                 "transformed copies of the training events: set training.augment.copies >= 1", cfg["model"])
        augment = static = None
    train_data = load_arrays(store, prep, train_ids, locality, cache, chunk=True,
                             raw=augment is not None and static is None, copies=static, seed=seed)
    if augment is not None and static is None:
        train_data.augment = Augmentation(prep, augment, train_data.fields[RAW_PARAMS])
    if augment is not None:
        log.info("augmentation: %s", ", ".join(f"{k} {v}" for k, v in augment.items() if v))
    val_data = load_arrays(val_store, prep, val_ids, locality, cache)
    log.info("model %s: %d training events (%d hits), %d validation events, device %s, %d rank(s)",
             cfg["model"], len(train_data), int(train_data.lengths.sum()), len(val_data), device, info.world_size)

    model = build_model(cfg, prep).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    log.info("%s: %d parameters, classes %d, attention %s", cfg["model"], n_params, prep.n_classes,
             cfg["architecture"].get("attention", "none"))
    loss_fn = model.loss
    collate_fn = getattr(model, "collate", None)
    if collate_fn is not None and train_data.augment is not None:
        raise ConfigError(f"{cfg['model']}: training.augment transforms the standard padded batches, and this model "
                          "builds its own; switch phi_rotation and z_reflection off")
    net = model
    if info.active:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    amp = amp_settings(tr["amp"], device)
    scaler = torch.amp.GradScaler("cuda") if amp[0] and amp[1] == torch.float16 else None
    optimizer = torch.optim.AdamW(model.parameters(), lr=tr["lr"], weight_decay=tr["weight_decay"],
                                  betas=tuple(tr["betas"]))
    steps_per_epoch = len(shard(batch_plan(train_data.lengths, tr["batch_size"], seed=seed, epoch=0), info))
    clock = {"before": 0.0}  # wall seconds of earlier calls on this run (from the checkpoint)

    def seconds_used() -> float:
        return clock["before"] + time.monotonic() - t_start

    schedule = LRSchedule(optimizer, lr=tr["lr"], schedule=tr["schedule"],
                          warmup_steps=int(round(tr["warmup_epochs"] * steps_per_epoch)),
                          total_steps=tr["epochs"] * steps_per_epoch, warmup_start_factor=tr["warmup_start_factor"],
                          min_lr=tr["min_lr"], plateau_factor=tr["plateau_factor"],
                          plateau_patience=tr["plateau_patience"],
                          progress=(lambda: seconds_used() / max(budget_s, 1e-9)) if budget_run else None)

    state = {"epoch": 0, "step": 0, "epoch_stats": {}, "epoch_seconds": 0.0, "best_val_loss": math.inf,
             "best_epoch": -1, "bad_epochs": 0, "history": [], "status": "running", "best_model": None,
             "seconds_used": 0.0}
    if resume:
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        schedule.load_state_dict(ckpt["schedule"])
        if scaler is not None and ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        set_rng_state(ckpt["rng"])
        state.update({k: ckpt.get(k, state[k]) for k in state})
        clock["before"] = float(state["seconds_used"])
        log.info("resumed from %s at epoch %d, batch %d (status %s)", ckpt_path, state["epoch"], state["step"],
                 state["status"])
        if state["status"] in ("completed", "early_stopping"):
            return _result(out_dir, state)
        state["status"] = "running"

    def checkpoint():
        state["seconds_used"] = seconds_used()
        if info.is_main:
            _save_checkpoint(ckpt_path, {
                **state, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict(), "scaler": scaler.state_dict() if scaler is not None else None,
                "rng": rng_state(), "config": cfg})
        barrier(info)

    board = _tensorboard(out_dir, info.is_main)
    deadline = None if budget_s is None else t_start + budget_s - (clock["before"] if budget_run else 0.0)
    if budget_run:
        log.info("time budget %.1f min (%.1f used): the learning-rate schedule spans it; training.epochs is not used",
                 budget_s / 60, clock["before"] / 60)

    def halt_reason() -> str | None:
        """`signal` or `time_budget` when this call must stop now (agreed across ranks), else None."""
        if any_rank(signals.received is not None, info, device):
            return "signal"
        if any_rank(deadline is not None and time.monotonic() > deadline, info, device):
            return "time_budget"
        return None

    while budget_run or state["epoch"] < tr["epochs"]:
        epoch = state["epoch"]
        budget_spent = False
        batches = shard(batch_plan(train_data.lengths, tr["batch_size"], seed=seed, epoch=epoch,
                                   bucket=tr["bucket"]), info)
        net.train()
        t0 = time.monotonic()
        train_stats, next_step = run_batches(
            net, loss_fn, train_data, batches, device=device, amp=amp, train=True, optimizer=optimizer,
            schedule=schedule, scaler=scaler, grad_clip=tr["grad_clip"], stats=state["epoch_stats"],
            start=state["step"],
            desc=f"epoch {epoch + 1}" + (f" ({budget_s / 60:g} min budget)" if budget_run else f"/{tr['epochs']}"),
            should_stop=lambda s: halt_reason() is not None or (stop is not None and stop(epoch, s)),
            collate_fn=collate_fn, augment_key=(seed, epoch, 104_729))
        state["epoch_seconds"] += time.monotonic() - t0
        if next_step < len(batches):  # interrupted inside the epoch
            reason = halt_reason() or "stopped"
            budget_spent = budget_run and reason == "time_budget"  # then this partial epoch is the last one
            if not budget_spent:
                state.update(step=next_step, epoch_stats=train_stats)
                return _interrupt(state, checkpoint, reason, cfg, model, prep, val_data, device, amp, out_dir, info)
        train_stats = sum_stats(train_stats, info, device)
        net.eval()
        val_stats, _ = run_batches(net, loss_fn, val_data, shard(batch_plan(val_data.lengths, tr["batch_size"],
                                   seed=seed, epoch=0, shuffle=False), info) or [np.arange(len(val_data))],
                                   device=device, amp=amp, train=False, desc="validation", collate_fn=collate_fn)
        val_stats = sum_stats(val_stats, info, device)
        row = _row(epoch + 1, train_stats, val_stats, schedule.lr(), state["epoch_seconds"], peak_memory_mb(device))
        row["wall_minutes"] = seconds_used() / 60
        schedule.step_epoch(row["val_loss"])
        state["history"].append(row)
        log.info("epoch %d: %s", epoch + 1, ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "epoch"))
        if row["val_loss"] < state["best_val_loss"]:
            state.update(best_val_loss=row["val_loss"], best_epoch=epoch + 1, bad_epochs=0,
                         best_model={k: v.detach().clone() for k, v in model.state_dict().items()})
        else:
            state["bad_epochs"] += 1
        state.update(epoch=epoch + 1, step=0, epoch_stats={}, epoch_seconds=0.0)
        if info.is_main:
            write_csv(out_dir / "history.csv", pd.DataFrame(state["history"]))
        if board is not None:
            for key, value in row.items():
                board.add_scalar(key, value, epoch + 1)
            board.flush()
        if budget_spent:
            log.info("time budget used after %d epochs (the last one partial): training complete", epoch + 1)
            break
        if tr["early_stopping"] and state["bad_epochs"] >= tr["early_stopping"]:
            log.info("early stopping: no validation improvement for %d epochs", state["bad_epochs"])
            state["status"] = "early_stopping"
            break
        if stop is not None and stop(epoch, len(batches)) and state["epoch"] < tr["epochs"]:
            return _interrupt(state, checkpoint, "stopped", cfg, model, prep, val_data, device, amp, out_dir, info)
        reason = halt_reason()
        if budget_run and reason == "time_budget":
            log.info("time budget used after %d epochs: training complete", epoch + 1)
            break
        if reason is not None and (budget_run or state["epoch"] < tr["epochs"]):
            return _interrupt(state, checkpoint, reason, cfg, model, prep, val_data, device, amp, out_dir, info)
        checkpoint()
    if state["status"] == "running":
        state["status"] = "completed"
    _finalise(cfg, model, prep, val_data, device, amp, out_dir, state, info)
    checkpoint()
    return _result(out_dir, state)


def _interrupt(state, checkpoint, reason, cfg, model, prep, val_data, device, amp, out_dir, info):
    """Checkpoint where we are; on a time budget also leave a usable model directory behind.

    reason: `time_budget` (max_minutes ran out), `signal` (SIGTERM/SIGUSR1: checkpoint only, the process
    is about to be killed) or `stopped` (the test hook).
    """
    state["status"] = reason
    if reason == "time_budget":
        _finalise(cfg, model, prep, val_data, device, amp, out_dir, state, info)
    checkpoint()
    if reason != "stopped":
        log.info("%s at epoch %d, batch %d: checkpoint written, the same command resumes from it",
                 "time budget reached" if reason == "time_budget" else "stop signal", state["epoch"] + 1,
                 state["step"])
    return _result(out_dir, state)


def _finalise(cfg, model, prep, val_data, device, amp, out_dir, state, info):
    """Best weights in place for prediction; then the family's post-training selection of its tracking
    parameters (`ModelSpec.select`: HDBSCAN's grid for regression, track formation for embeddings) on
    the validation events with the best weights, written into preprocessing.json."""
    if state["best_model"] is None:  # stopped before the first epoch ended: the current weights are all we have
        state["best_model"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
    select = MODELS[cfg["model"]].select
    if select is None or not info.is_main:
        return
    current = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(state["best_model"])
    model.eval()
    try:
        clustering = select(model, cfg, prep, val_data, device, amp)
    finally:
        model.load_state_dict(current)  # the checkpoint written next holds the last weights, not the best
    if clustering is not None:
        prep.clustering = clustering
        write_json(out_dir / "preprocessing.json", prep.to_json())


def _result(out_dir, state) -> TrainResult:
    return TrainResult(out_dir, state["epoch"], state["best_epoch"], state["best_val_loss"], state["status"],
                       pd.DataFrame(state["history"]))
