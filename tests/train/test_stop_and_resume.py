"""Stopping before the stopping rule: a signal or a spent budget checkpoints, and only a finished training
is published by the workflow stage (so a cluster retry resumes instead of using a half-trained model)."""

from __future__ import annotations

import os
import signal

import pytest
import torch

from train_helpers import TINY, assert_same_weights, linear_events, weights

from trackpipe.errors import ConfigError, TrainingIncomplete
from trackpipe.io.store import write_store
from trackpipe.pipeline import train_for_workflow
from trackpipe.train.loop import CHECKPOINT, read_status, train


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    write_store(root / "train", linear_events(12, seed=3, tracks=(3, 8), noise_fraction=0.05, smear=0.05))
    write_store(root / "val", linear_events(4, seed=4, tracks=(3, 8), noise_fraction=0.05, smear=0.05))
    return root / "train", root / "val"


def test_sigterm_checkpoints_and_resumes_to_the_same_weights(stores, tmp_path):
    train_store, val_store = stores
    straight = train("enccla", train_store, tmp_path / "straight", val=val_store, config=TINY, epochs=2, seed=4)
    assert straight.status == "completed" and read_status(tmp_path / "straight")["status"] == "completed"

    def kill_mid_epoch(epoch, step):
        if epoch == 1 and step == 1:
            os.kill(os.getpid(), signal.SIGTERM)  # what Slurm sends at a time limit or on scancel
        return False

    before = signal.getsignal(signal.SIGTERM)
    first = train("enccla", train_store, tmp_path / "resumed", val=val_store, config=TINY, epochs=2, seed=4,
                  stop=kill_mid_epoch)
    assert signal.getsignal(signal.SIGTERM) is before  # handler restored after training
    assert first.status == "signal" and first.epochs_done == 1
    assert read_status(tmp_path / "resumed") == {"status": "signal", "epochs_done": 1, "epochs": 2,
                                                 "best_epoch": 1}
    assert torch.load(tmp_path / "resumed" / CHECKPOINT, weights_only=False)["step"] == 2  # the batch in flight ended
    second = train("enccla", train_store, tmp_path / "resumed", val=val_store, config=TINY, epochs=2, seed=4)
    assert second.status == "completed"
    assert_same_weights(weights(tmp_path / "straight"), weights(tmp_path / "resumed"))
    assert_same_weights(weights(tmp_path / "straight", "best_model"), weights(tmp_path / "resumed", "best_model"))


def test_usr1_is_a_stop_request_too(stores, tmp_path):
    train_store, val_store = stores

    def warn(epoch, step):
        if epoch == 0 and step == 1:
            os.kill(os.getpid(), signal.SIGUSR1)  # sbatch --signal=USR1@120: the warning before the limit
        return False

    res = train("enccla", train_store, tmp_path / "m", val=val_store, config=TINY, epochs=2, seed=0, stop=warn)
    assert res.status == "signal" and res.epochs_done == 0


SECTION = {"family": "enccla", **TINY, "epochs": 2}
# max_minutes as a limit on an epoch-based run (the cluster's safety net), not as the run's length
SECTION["training"] = {**TINY["training"], "budget": "stop"}


def test_workflow_stage_publishes_only_finished_training(stores, tmp_path):
    train_store, val_store = stores
    kw = dict(train=train_store, val=val_store, seed=4, threads=1)
    straight = tmp_path / "straight"
    train_for_workflow(section=SECTION, out=straight, work_root=tmp_path / "w0", **kw)
    assert read_status(straight)["status"] == "completed"

    # The budget runs out: checkpoint kept, nothing published, the job fails with a message saying why.
    out, work = tmp_path / "models" / "m", tmp_path / "w1"
    with pytest.raises(TrainingIncomplete, match="max_minutes budget ran out.*resumes from it"):
        train_for_workflow(section={**SECTION, "max_minutes": 0.0}, out=out, work_root=work, **kw)
    assert not out.exists() and (work / CHECKPOINT).is_file()
    # The retry (same config, more time) resumes to the weights of an uninterrupted run.
    train_for_workflow(section=SECTION, out=out, work_root=work, **kw)
    assert_same_weights(weights(straight), weights(out))


def test_workflow_stage_on_budget_finish_publishes_the_partial_model(stores, tmp_path):
    train_store, val_store = stores
    out = tmp_path / "m"
    train_for_workflow(section={**SECTION, "max_minutes": 0.0, "on_budget": "finish"}, out=out, train=train_store,
                       val=val_store, seed=0, threads=1, work_root=tmp_path / "w")
    assert read_status(out)["status"] == "time_budget"
    assert (out / "preprocessing.json").is_file() and weights(out, "best_model") is not None
    with pytest.raises(ConfigError, match="on_budget"):
        train_for_workflow(section={**SECTION, "on_budget": "later"}, out=tmp_path / "x", train=train_store,
                           val=val_store, seed=0, threads=1, work_root=tmp_path / "w2")


def test_cli_exit_status(stores, tmp_path, capsys):
    from trackpipe.cli import main

    train_store, val_store = stores
    # --max-minutes means "train this long, then publish and exit 0": a zero budget is one partial epoch.
    rc = main(["train", "--model", "enccla", "--data", str(train_store), "--val", str(val_store), "--epochs", "2",
               "--max-minutes", "0", "--out", str(tmp_path / "m")])
    assert rc == 0 and "completed: 1 epochs" in capsys.readouterr().out
