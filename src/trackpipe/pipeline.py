"""Stage entry points shared by the workflow scripts and the CLI: one call per stage, plain arguments."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

# Trackers that need no training, by model family.
CLASSICAL = {"helix-dbscan"}


def predict_for_workflow(*, section: dict, model_dir, data, out, timing, gpus: int = 0) -> None:
    """Predict tracks for every event of the store `data`; write the submission and per-event timing."""
    family = section["family"]
    if family in CLASSICAL:
        from .tracking.runner import helix_dbscan_tracker, run_tracker

        run_tracker(data, helix_dbscan_tracker(section.get("params")), out, timing_csv=timing, desc=family)
        return
    from .predict import predict

    predict(model_dir, data, out, timing=timing, gpus=gpus)
