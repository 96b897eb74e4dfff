"""Data-parallel training on CPU (gloo, world size 2): ranks stay in sync and only rank 0 writes."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from trackpipe.io.store import write_store
from trackpipe.train.toydata import linear_events

from .test_loop import TINY


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, store, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from trackpipe.train.loop import train

    import torch.distributed as dist

    result = train("enccla", store, out, config=TINY, epochs=2, seed=0, threads=1)
    assert result.status == "completed"
    dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_gloo_two_ranks(tmp_path):
    store = tmp_path / "store"
    write_store(store, linear_events(18, seed=9, min_tracks=3, max_tracks=6))
    out = tmp_path / "ddp"
    mp.spawn(_worker, args=(2, _free_port(), str(store), str(out)), nprocs=2, join=True)
    for name in ("config.json", "checkpoint.pt", "preprocessing.json", "history.csv", "train.log"):
        assert (out / name).is_file()
    import pandas as pd

    hist = pd.read_csv(out / "history.csv")
    assert hist.epoch.tolist() == [1, 2]
    ckpt = torch.load(out / "checkpoint.pt", weights_only=False)
    assert ckpt["status"] == "completed" and ckpt["epoch"] == 2
    # 16 training events, 4 per batch -> 4 batches per epoch, 2 per rank: the schedule counted 2 steps/epoch.
    assert ckpt["schedule"]["step_count"] == 4
