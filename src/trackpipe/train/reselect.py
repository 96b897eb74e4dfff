"""Post-training selection again, on a trained model directory: the family's `ModelSpec.select` (track
formation for embeddings, HDBSCAN's grid for regression, the class rule for classifiers) on validation
events with the model's best weights, written into its preprocessing.json.

Why: the selection's candidates change with the code (e.g. the helix test of `tracking.helix`), and a
model trained by an earlier version gets them without retraining. The model's recorded config fills keys
added since with their defaults (`models.registry.recorded_config`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from ..device import select_device, set_threads
from ..errors import ConfigError
from ..io.atomic import write_json
from ..io.store import EventStore
from ..models.registry import MODELS
from .locality import load_arrays, locality_settings
from .loop import amp_settings

log = logging.getLogger("trackpipe.train")


def reselect(model_dir, val, *, tracking: dict | None = None, events: int | None = None,
             threads: int | None = None) -> dict:
    """Run the selection of the model in ``model_dir`` on the first ``events`` events of the store ``val``
    (default: the config's ``tracking.selection_events``) and write the result into its preprocessing.json.
    ``tracking``: keys that replace the recorded config's ``tracking`` ones for this selection (e.g. the
    current defaults, or another k); what is chosen is saved with the selection and used by prediction.
    Returns the new clustering section."""
    from ..predict import load_model

    model_dir = Path(model_dir)
    set_threads(threads)
    model, cfg, prep = load_model(model_dir, torch.device("cpu"))
    if tracking:
        unknown = set(tracking) - set(cfg["tracking"])
        if unknown:
            raise ConfigError(f"unknown tracking keys {sorted(unknown)} for {cfg['model']}; allowed: {sorted(cfg['tracking'])}")
        cfg["tracking"] = {**cfg["tracking"], **tracking}
    select = MODELS[cfg["model"]].select
    if select is None:
        raise ConfigError(f"{cfg['model']} has no post-training selection")
    device = select_device(cfg["training"]["device"])
    model = model.to(device)
    store = EventStore(val)
    n = int(events if events is not None else cfg["tracking"].get("selection_events", len(store.event_ids)))
    val_ids = store.event_ids[:n]
    settings = locality_settings(cfg)
    val_data = load_arrays(store, prep, val_ids, settings, model_dir / "locality-cache" if settings is not None else None)
    clustering = select(model, cfg, prep, val_data, device, amp_settings(cfg["training"]["amp"], device))
    if clustering is not None:
        prep.clustering = clustering
        write_json(model_dir / "preprocessing.json", prep.to_json())
        log.info("%s: selection rerun on %d events of %s -> %s", model_dir, len(val_ids), val,
                 json.dumps({k: v for k, v in clustering.items() if k != "grid"}))
    return clustering
