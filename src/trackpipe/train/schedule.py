"""Learning-rate schedule: linear warm-up, then cosine decay, plateau reduction or constant.

Its whole state is a few numbers (saved in checkpoints), and the rate is a pure function of that
state, so a resumed run continues with exactly the rate the uninterrupted run would have used.

Cosine decay runs over optimiser steps (``total_steps``), or, when the run's length is a time budget
(``training.budget: schedule``), over the fraction of that budget used: ``progress()`` returns it, and
the decay starts where the warm-up ended, so the rate reaches ``min_lr`` exactly when the budget does
whatever the speed of the machine. Such a run is reproducible up to where the clock cuts it.
"""

from __future__ import annotations

import math

from ..errors import ConfigError

SCHEDULES = ("cosine", "plateau", "constant")
# With a time budget the warm-up also ends once this fraction of the budget is used: warmup_epochs is in
# epochs, and a budget that allows only a few epochs must not spend them all warming up.
WARMUP_BUDGET_CAP = 0.05


class LRSchedule:
    def __init__(self, optimizer, *, lr: float, schedule: str, warmup_steps: int, total_steps: int,
                 warmup_start_factor: float = 0.1, min_lr: float = 0.0, plateau_factor: float = 0.5,
                 plateau_patience: int = 5, progress=None):
        if schedule not in SCHEDULES:
            raise ConfigError(f"training.schedule must be one of {SCHEDULES}, not {schedule!r}")
        self.optimizer = optimizer
        self.base_lr, self.schedule, self.min_lr = lr, schedule, min_lr
        self.warmup_steps, self.total_steps = max(0, warmup_steps), max(1, total_steps)
        self.start_factor = warmup_start_factor
        self.plateau_factor, self.plateau_patience = plateau_factor, plateau_patience
        self.step_count = 0
        self.plateau_scale = 1.0
        self.plateau_best = math.inf
        self.plateau_bad = 0
        self.progress = progress  # callable -> fraction of the time budget used, or None (step-based)
        self.warmup_end_progress = None  # budget fraction at the end of warm-up (time-based decay only)
        self._apply()

    def _warming_up(self) -> bool:
        if self.progress is not None:
            return self.warmup_end_progress is None and self.step_count < self.warmup_steps and \
                self.progress() < WARMUP_BUDGET_CAP
        return self.step_count < self.warmup_steps

    def lr(self) -> float:
        s = self.step_count
        if self._warming_up():
            done = s / self.warmup_steps
            if self.progress is not None:
                done = max(done, self.progress() / WARMUP_BUDGET_CAP)
            return self.base_lr * (self.start_factor + (1 - self.start_factor) * min(1.0, done))
        if self.schedule == "cosine":
            if self.progress is not None:
                start = self.warmup_end_progress or 0.0
                t = min(1.0, max(0.0, (self.progress() - start) / max(1e-9, 1.0 - start)))
            else:
                t = min(1.0, (s - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps))
            return self.min_lr + (self.base_lr - self.min_lr) * 0.5 * (1 + math.cos(math.pi * t))
        if self.schedule == "plateau":
            return max(self.min_lr, self.base_lr * self.plateau_scale)
        return self.base_lr

    def _apply(self) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr()

    def step_batch(self) -> None:
        self.step_count += 1
        if self.progress is not None and self.warmup_end_progress is None and not self._warming_up():
            self.warmup_end_progress = float(self.progress())
        self._apply()

    def step_epoch(self, val_loss: float) -> None:
        if self.schedule != "plateau" or self.step_count < self.warmup_steps:
            return
        if val_loss < self.plateau_best:
            self.plateau_best, self.plateau_bad = val_loss, 0
        else:
            self.plateau_bad += 1
            if self.plateau_bad > self.plateau_patience:
                self.plateau_scale *= self.plateau_factor
                self.plateau_bad = 0
        self._apply()

    def state_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("step_count", "plateau_scale", "plateau_best", "plateau_bad",
                                                "warmup_end_progress")}

    def load_state_dict(self, state: dict) -> None:
        for k, v in state.items():
            setattr(self, k, v)
        self._apply()
