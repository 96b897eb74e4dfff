"""Data-parallel training on CPU (gloo, world size 2): ranks stay in sync and only rank 0 writes."""

from __future__ import annotations

import pytest
import torch
import torch.multiprocessing as mp

from trackpipe.io.store import write_store

from train_helpers import ddp_worker, free_port, linear_events


@pytest.mark.slow
def test_ddp_gloo_two_ranks(tmp_path):
    store = tmp_path / "store"
    write_store(store, linear_events(18, seed=9, tracks=(3, 6)))
    out = tmp_path / "ddp"
    mp.spawn(ddp_worker, args=(2, free_port(), str(store), str(out)), nprocs=2, join=True)
    for name in ("config.json", "checkpoint.pt", "preprocessing.json", "history.csv", "train.log"):
        assert (out / name).is_file()
    import pandas as pd

    hist = pd.read_csv(out / "history.csv")
    assert hist.epoch.tolist() == [1, 2]
    ckpt = torch.load(out / "checkpoint.pt", weights_only=False)
    assert ckpt["status"] == "completed" and ckpt["epoch"] == 2
    # 16 training events, 4 per batch -> 4 batches per epoch, 2 per rank: the schedule counted 2 steps/epoch.
    assert ckpt["schedule"]["step_count"] == 4
