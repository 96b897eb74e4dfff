"""The training loop: exact resume, model-directory contract, time budget, early stopping, seeding."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from train_helpers import TINY, assert_same_weights, linear_events, weights  # noqa: F401  (shared with test_predict, test_ddp)

from trackpipe.errors import ConfigError
from trackpipe.io.store import EventStore, write_store
from trackpipe.targets import Preprocessing, fit_preprocessing
from trackpipe.train.data import batch_plan, load_tables
from trackpipe.train.loop import CHECKPOINT, split_events, train
from trackpipe.train.schedule import LRSchedule



@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("toy") / "store"
    write_store(path, linear_events(14, seed=3, tracks=(3, 8), noise_fraction=0.05, smear=0.05))
    return path


@pytest.mark.parametrize("stop_at", ["epoch_end", "mid_epoch"])
def test_resume_is_exact(store, tmp_path, stop_at):
    straight = train("enccla", store, tmp_path / "straight", config=TINY, epochs=2, seed=4)
    assert straight.status == "completed" and straight.epochs_done == 2
    n_batches = 3  # 12 training events / 4 per batch

    def stop(epoch, step):
        return (epoch == 0 and step == n_batches) if stop_at == "epoch_end" else (epoch == 1 and step == 1)

    first = train("enccla", store, tmp_path / "resumed", config=TINY, epochs=2, seed=4, stop=stop)
    assert first.status == "stopped"
    second = train("enccla", store, tmp_path / "resumed", config=TINY, epochs=2, seed=4)
    assert second.status == "completed"
    assert_same_weights(weights(tmp_path / "straight"), weights(tmp_path / "resumed"))
    assert_same_weights(weights(tmp_path / "straight", "best_model"), weights(tmp_path / "resumed", "best_model"))
    h1 = pd.read_csv(tmp_path / "straight" / "history.csv")
    h2 = pd.read_csv(tmp_path / "resumed" / "history.csv")
    cols = ["epoch", "train_loss", "val_loss", "val_accuracy", "lr"]
    pd.testing.assert_frame_equal(h1[cols], h2[cols])


def test_seed_changes_the_run(store, tmp_path):
    train("enccla", store, tmp_path / "a", config=TINY, epochs=1, seed=1)
    train("enccla", store, tmp_path / "b", config=TINY, epochs=1, seed=2)
    a, b = weights(tmp_path / "a"), weights(tmp_path / "b")
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_model_directory_contract(store, tmp_path):
    out = tmp_path / "m"
    res = train("encreg", store, out, config=TINY, epochs=2, seed=0)
    for name in ("config.json", "checkpoint.pt", "preprocessing.json", "history.csv", "train.log"):
        assert (out / name).is_file(), name
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model"] == "encreg" and cfg["seed"] == 0 and cfg["training"]["epochs"] == 2
    assert cfg["architecture"]["d_model"] == 16 and cfg["training"]["grad_clip"] == 1.0
    # Normalisation and edges are those of the training split alone.
    train_ids, val_ids = split_events(EventStore(store).event_ids, cfg["training"]["val_fraction"], 0)
    hits, parts = load_tables(EventStore(store), train_ids)
    expected = fit_preprocessing(hits, parts, bins=TINY["targets"]["bins"])
    saved = Preprocessing.from_json(json.loads((out / "preprocessing.json").read_text()))
    assert saved.edges == expected.edges and saved.target_mean == expected.target_mean
    assert saved.input_std == expected.input_std
    # Clustering parameters chosen on validation from the configured grid.
    assert saved.clustering["min_cluster_size"] in (3, 4) and saved.clustering["min_samples"] == 1
    assert len(saved.clustering["grid"]) == 2 and saved.clustering["selection_events"] == len(val_ids)
    hist = pd.read_csv(out / "history.csv")
    assert hist.epoch.tolist() == [1, 2] and np.isfinite(hist.val_reg_mse).all()
    assert res.best_epoch in (1, 2)
    # Same directory, different config: refused rather than silently mixed.
    with pytest.raises(ConfigError, match="different config"):
        train("encreg", store, out, config=TINY, epochs=3, seed=0)


STOP_BUDGET = {**TINY, "training": {**TINY["training"], "budget": "stop"}}


def test_time_budget_leaves_a_resumable_usable_model(store, tmp_path):
    out = tmp_path / "budget"
    res = train("enccla", store, out, config=STOP_BUDGET, epochs=3, max_minutes=0.0, seed=0)
    assert res.status == "time_budget" and res.epochs_done == 0
    ckpt = torch.load(out / CHECKPOINT, weights_only=False)
    assert ckpt["step"] == 1 and ckpt["best_model"] is not None
    done = train("enccla", store, out, config=STOP_BUDGET, epochs=3, seed=0)
    assert done.status == "completed" and done.epochs_done == 3


def test_early_stopping(store, tmp_path):
    cfg = {**TINY, "training": {**TINY["training"], "lr": 0.0, "early_stopping": 2, "schedule": "constant",
                                "warmup_epochs": 0}}
    res = train("enccla", store, tmp_path / "es", config=cfg, epochs=10, seed=0)
    # lr 0: the validation loss never improves after epoch 1.
    assert res.status == "early_stopping" and res.epochs_done == 3 and res.best_epoch == 1


def test_bf16_autocast_on_cpu_trains(store, tmp_path):
    cfg = {**TINY, "training": {**TINY["training"], "amp": "bf16"}}
    res = train("jm", store, tmp_path / "jm", config={**cfg, "joint": {"reg_layers": 1, "cla_layers": 1}},
                epochs=1, seed=0)
    assert np.isfinite(res.history.train_loss).all() and "val_accuracy" in res.history
    assert "val_reg_mse" in res.history


def test_batch_plan_is_a_function_of_seed_and_epoch():
    lengths = np.random.default_rng(0).integers(5, 100, 103)
    a = batch_plan(lengths, 8, seed=1, epoch=2, bucket=True)
    assert [x.tolist() for x in a] == [x.tolist() for x in batch_plan(lengths, 8, seed=1, epoch=2, bucket=True)]
    assert sorted(np.concatenate(a).tolist()) == list(range(103))
    b = batch_plan(lengths, 8, seed=1, epoch=3, bucket=True)
    assert [x.tolist() for x in a] != [x.tolist() for x in b]
    # Bucketing: less padding than random batches.
    pad = lambda plan: sum(len(x) * lengths[x].max() - lengths[x].sum() for x in plan)  # noqa: E731
    assert pad(a) < pad(batch_plan(lengths, 8, seed=1, epoch=2, bucket=False))


def test_schedule_warmup_cosine_and_plateau():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    s = LRSchedule(opt, lr=1.0, schedule="cosine", warmup_steps=4, total_steps=14, warmup_start_factor=0.2,
                   min_lr=0.0)
    lrs = []
    for _ in range(14):
        lrs.append(opt.param_groups[0]["lr"])
        s.step_batch()
    assert lrs[:4] == pytest.approx([0.2, 0.4, 0.6, 0.8])
    assert lrs[4] == pytest.approx(1.0) and lrs[9] == pytest.approx(0.5) and opt.param_groups[0]["lr"] == 0.0
    p = LRSchedule(opt, lr=1.0, schedule="plateau", warmup_steps=0, total_steps=10, plateau_patience=1,
                   plateau_factor=0.5)
    for loss in (1.0, 1.0, 1.0):
        p.step_epoch(loss)
    assert opt.param_groups[0]["lr"] == 0.5
