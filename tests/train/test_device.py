"""Device choice, threads and seeding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trackpipe.device import rng_state, seed_everything, select_device, set_rng_state, set_threads
from trackpipe.errors import ConfigError


def test_select_device():
    assert select_device("cpu").type == "cpu"
    assert select_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device"):
            select_device("cuda")
    with pytest.raises(ConfigError):
        select_device("tpu")


def test_threads_and_seeding():
    before = torch.get_num_threads()
    try:
        assert set_threads(2) == 2 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    seed_everything(5)
    a = (np.random.rand(), torch.rand(1).item())
    state = rng_state()
    b = (np.random.rand(), torch.rand(1).item())
    set_rng_state(state)
    assert (np.random.rand(), torch.rand(1).item()) == b
    seed_everything(5)
    assert (np.random.rand(), torch.rand(1).item()) == a
