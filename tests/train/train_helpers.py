"""Shared by the training tests (kept out of test modules so that spawned DDP ranks can import it)."""

from __future__ import annotations

import os
import socket

import torch

TINY = {
    "architecture": {"d_model": 16, "n_heads": 2, "d_ff": 32, "n_layers": 2, "dropout": 0.1},
    "targets": {"bins": {"theta_d": 4, "polar": 3}},
    "training": {"batch_size": 4, "lr": 3e-3, "early_stopping": 0, "warmup_epochs": 0.5},
    "tracking": {"min_cluster_size": [3, 4], "min_samples": [1], "selection_events": 3},
}


def weights(model_dir, key="model"):
    """A tensor dict of a model directory's checkpoint (`model`, `best_model`, ...)."""
    from trackpipe.train.loop import CHECKPOINT

    return torch.load(model_dir / CHECKPOINT, weights_only=False)[key]


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ddp_worker(rank, world, port, store, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from trackpipe.train.loop import train

    import torch.distributed as dist

    result = train("enccla", store, out, config=TINY, epochs=2, seed=0, threads=1)
    assert result.status == "completed"
    dist.destroy_process_group()


