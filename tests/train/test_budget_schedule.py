"""A time budget as the run's length (training.budget: schedule): the cosine schedule spans the budget,
the run ignores training.epochs, ends `completed` with its last (partial) epoch validated, and a resumed
run spends only what is left of the budget."""

from __future__ import annotations

import math

import pytest
import torch

from train_helpers import TINY, weights

from trackpipe.io.store import write_store
from trackpipe.sim.redvid import simulate_redvid
from trackpipe.train.loop import CHECKPOINT, train
from trackpipe.train.schedule import LRSchedule


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("budget") / "store"
    return write_store(path, simulate_redvid({"track_types": ["linear"], "n_tracks": [3, 6]}, range(14), 5))


def _schedule(progress, warmup_steps=0):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    return LRSchedule(opt, lr=1.0, schedule="cosine", warmup_steps=warmup_steps, total_steps=10**6,
                      min_lr=0.01, progress=progress)


def test_cosine_follows_the_budget_fraction_not_the_steps():
    used = {"f": 0.0}
    s = _schedule(lambda: used["f"])
    s.step_batch()  # warm-up (none) ends at fraction 0
    for f, expected in [(0.0, 1.0), (0.5, 0.01 + 0.99 * 0.5), (1.0, 0.01), (1.7, 0.01)]:
        used["f"] = f
        s.step_batch()
        assert s.lr() == pytest.approx(expected), f
    # 10**6 steps would have kept a step-based cosine at its start
    assert s.step_count == 5


def test_decay_starts_where_the_warm_up_ended_and_survives_a_checkpoint():
    used = {"f": 0.0}
    s = _schedule(lambda: used["f"], warmup_steps=2)
    used["f"] = 0.01
    s.step_batch()
    assert s.lr() < 1.0  # still warming up (linear from 0.1)
    used["f"] = 0.02
    s.step_batch()  # warm-up ends here (2 steps): the decay spans the remaining 0.98 of the budget
    used["f"] = 0.02 + 0.98 * 0.5
    assert s.lr() == pytest.approx(0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    restored = _schedule(lambda: used["f"], warmup_steps=2)
    restored.load_state_dict(s.state_dict())
    assert restored.lr() == pytest.approx(s.lr())


def test_budget_is_the_run_length(store, tmp_path):
    out = tmp_path / "m"
    # a budget of ~4 s with epochs=1: the run keeps going past training.epochs until the budget is used
    res = train("enccla", store, out, config=TINY, epochs=1, max_minutes=0.07, seed=0)
    hist = res.history
    assert res.status == "completed" and res.epochs_done >= 2 and len(hist) == res.epochs_done
    ckpt = torch.load(out / CHECKPOINT, weights_only=False)
    assert ckpt["seconds_used"] >= 0.07 * 60
    assert hist.wall_minutes.is_monotonic_increasing and hist.wall_minutes.iloc[-1] <= ckpt["seconds_used"] / 60
    # the rate ended at (or within the last epoch's sliver of) the schedule's floor: cosine over the budget
    assert hist.lr.iloc[-1] < 0.01 * TINY["training"]["lr"] < hist.lr.iloc[0]
    # the same command again: the budget is spent, nothing more is trained
    again = train("enccla", store, out, config=TINY, epochs=1, max_minutes=0.07, seed=0)
    assert again.status == "completed" and again.epochs_done == res.epochs_done
    for k, v in weights(out).items():
        assert torch.equal(v, ckpt["model"][k]), k


def test_a_stopped_budget_run_resumes_with_what_is_left(store, tmp_path):
    out = tmp_path / "r"
    first = train("enccla", store, out, config=TINY, epochs=1, max_minutes=0.5, seed=0,
                  stop=lambda epoch, step: epoch == 0 and step == 1)
    assert first.status == "stopped"
    used = torch.load(out / CHECKPOINT, weights_only=False)["seconds_used"]
    assert 0 < used < 30
    # resuming with a budget already smaller than what was used: one batch, then the run is complete
    done = train("enccla", store, out, config=TINY, epochs=1, max_minutes=used / 60 / 2, seed=0)
    assert done.status == "completed" and done.epochs_done == 1


def test_warm_up_takes_at_most_a_twentieth_of_the_budget():
    from trackpipe.train.schedule import WARMUP_BUDGET_CAP

    used = {"f": 0.0}
    s = _schedule(lambda: used["f"], warmup_steps=10**6)  # warm-up asked for more steps than the budget allows
    used["f"] = WARMUP_BUDGET_CAP / 2
    s.step_batch()
    assert s.lr() == pytest.approx(0.1 + 0.9 * 0.5)  # ramps with the budget fraction (start factor 0.1)
    used["f"] = WARMUP_BUDGET_CAP
    s.step_batch()  # the cap ends the warm-up: the decay spans the rest of the budget
    assert s.warmup_end_progress == pytest.approx(WARMUP_BUDGET_CAP) and s.lr() == pytest.approx(1.0)
    used["f"] = 1.0
    assert s.lr() == pytest.approx(0.01)
