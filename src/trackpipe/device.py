"""Device choice, thread budget and seeding: the three things every torch entry point sets first."""

from __future__ import annotations

import logging
import os
import random
import time

import numpy as np

log = logging.getLogger(__name__)


def select_device(requested: str = "auto"):
    """`auto` -> CUDA iff available; `cuda` fails loudly without a GPU; `cpu` always works.

    Under torchrun the local rank picks the GPU (`LOCAL_RANK`).
    """
    import torch

    from .errors import ConfigError

    requested = (requested or "auto").lower()
    if requested not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"device must be auto, cpu or cuda, not {requested!r}")
    if requested == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but torch sees no CUDA device")
    if requested == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))


def set_threads(threads: int | None) -> int:
    """Intra-op threads for torch (and the BLAS env vars for child libraries); returns the count used.

    `None` keeps what the environment says (Snakemake sets OMP_NUM_THREADS to the job's threads).
    """
    import torch

    from .runtime import configure_threads

    if threads is None:
        threads = int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads()))
    return configure_threads(threads)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices) so that the same config + seed gives the same run."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def rng_state() -> dict:
    """Every random-number state a training step touches (saved in checkpoints for exact resume)."""
    import torch

    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class DeviceTimer:
    """Milliseconds of the enclosed device work: CUDA events on GPU, wall clock on CPU."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def __enter__(self):
        if self.cuda:
            self.start, self.end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            self.start.record()
        else:
            self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if self.cuda:
            self.end.record()
            torch.cuda.synchronize()
            self.ms = self.start.elapsed_time(self.end)
        else:
            self.ms = (time.perf_counter() - self.t0) * 1e3
        return False
