"""Process set-up shared by the CLI and workflow scripts: thread budget and log files."""

from __future__ import annotations

import logging
import os
import sys

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS")


def configure_threads(n: int) -> int:
    """Use exactly `n` threads for BLAS, OpenMP and torch in this process (call before heavy work).

    Oversubscribed processes on a small machine run 2-100x slower, so every job states its budget.
    """
    n = max(int(n), 1)
    for var in THREAD_VARIABLES:
        os.environ[var] = str(n)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        pass
    # torch reads OMP_NUM_THREADS when first imported; if it is already loaded, tell it directly.
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
    return n


def log_to_file(path, level=logging.INFO) -> None:
    """Send this process's log records (and warnings) to `path` as well as stderr."""
    root = logging.getLogger()
    root.setLevel(level)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in (logging.FileHandler(path, mode="w"), logging.StreamHandler(sys.stderr)):
        handler.setFormatter(fmt)
        root.addHandler(handler)
    logging.captureWarnings(True)
