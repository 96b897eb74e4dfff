"""Summary statistics of per-event inference times."""

from __future__ import annotations

import numpy as np


def timing_summary(times_ms, warmup: int = 0) -> dict[str, float | int]:
    """median, p90 (90th percentile, linear interpolation), mean and n of `times_ms` (in event order)
    after dropping the first `warmup` events (lazy initialisation, compilation, cache warm-up).

    Non-finite entries (e.g. a device time on a CPU-only run) are ignored. With no time left the
    statistics are NaN and n is 0.
    """
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, not {warmup}")
    t = np.asarray(times_ms, dtype=np.float64)[int(warmup):]
    t = t[np.isfinite(t)]
    if len(t) == 0:
        return {"median": float("nan"), "p90": float("nan"), "mean": float("nan"), "n": 0}
    return {"median": float(np.median(t)), "p90": float(np.percentile(t, 90)), "mean": float(t.mean()), "n": int(len(t))}
