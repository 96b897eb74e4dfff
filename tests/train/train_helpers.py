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


# Small REDVID linear events (trackpipe.sim.redvid) for the training tests: nine barrel shells at r = 10..90 mm,
# |z| <= 100 mm, no disks, straight tracks from the origin with |eta| <= asinh(1) (|z| <= r), so every track
# crosses all nine shells; a few dozen hits per event.
SMALL_BARREL = {"barrel": {"radii": [10.0 * i for i in range(1, 10)], "half_length": 100.0},
                "short_strip": {"present": False}, "long_strip": {"present": False}}


def linear_events(n: int, *, seed: int, tracks=(3, 8), noise_fraction: float = 0.0, smear: float = 0.0,
                  first_id: int = 0) -> list:
    """`n` events (event ids first_id, first_id + 1, ...) with a uniform number of tracks in `tracks`,
    Gaussian smearing `smear` mm across and along each shell, and noise hits (Poisson, that fraction of
    the track hits)."""
    from trackpipe.sim.redvid import simulate_redvid

    config = {"detector": SMALL_BARREL, "track_types": ["linear"], "n_tracks": list(tracks),
              "eta": [-0.8813, 0.8813], "smear_rphi": smear, "smear_long": smear, "noise_fraction": noise_fraction,
              "batch_events": 64}
    return list(simulate_redvid(config, range(first_id, first_id + n), seed))


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


