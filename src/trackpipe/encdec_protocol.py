"""EncDec under the paper's evaluation protocol ([P1] §3.3.1, Table 1 note), on a test store.

The workflow's ordinary evaluation scores EncDec as a full-event tracker (geometric seeds, no truth,
every hit counted). The paper measured it differently, and this module reproduces that measurement:

* next-hit accuracy (teacher forcing over every true track of >= 3 hits): a prediction p of the true
  next hit t is correct iff |p - t| <= margin |t| (mm, distances from the origin; margin 5 %);
* TrackML score and FitAccuracy of the event decoded from **truth seeds** (the first three true hits of
  every particle), with the seed hits left out of both the truth and the submission: they were given,
  not reconstructed;
* wall-clock time of that decoding per event (seeds, encoder, every decoder step, snapping).

This reads the truth by design: it is an evaluation. The tracker itself (`tracking.encdec_decode`)
never does; the truth enters only as the seeds and as the reference here.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from .device import select_device, set_threads
from .errors import DataError
from .io.atomic import write_json
from .io.store import EventStore
from .progress import progress

log = logging.getLogger(__name__)


def evaluate_encdec_protocol(model_dir, data, out=None, *, max_events: int | None = None, device: str = "auto",
                             threads: int | None = None) -> dict:
    """The paper-protocol metrics of the EncDec model in `model_dir` on the event store `data`.

    Returns (and, with `out`, writes atomically as JSON) ``{next_hit_accuracy, n_next_hit_predictions,
    margin, seed_excluded_trackml_score, seed_excluded_fit_accuracy, truth_seeded_wall_ms_median,
    truth_seeded_wall_ms_p90, n_events, n_seeds, device}``. Scores are means over events, like the
    ordinary evaluation's; next-hit accuracy pools every prediction of every event.
    """
    from .predict import load_model
    from .tracking.encdec_decode import next_hit_accuracy, reconstruct_event, seed_excluded_scores

    config_file = Path(model_dir) / "config.json"
    family = json.loads(config_file.read_text()).get("model") if config_file.is_file() else None
    if family != "encdec":
        raise DataError(f"the EncDec protocol needs an encdec model, this one is {family!r}", file=config_file)
    set_threads(threads)
    dev = select_device(device)
    model, cfg, _ = load_model(model_dir, dev)
    store = EventStore(data)
    ids = store.event_ids if max_events is None else store.event_ids[:max_events]
    if len(ids) == 0:
        raise DataError("the store has no events to evaluate", file=data)
    tracking = {**cfg["tracking"], "seeds": "truth"}
    correct = total = n_seeds = 0
    scores, wall = [], []
    with torch.inference_mode():
        reconstruct_event(model, store.read_event(ids[0]).hits, tracking, device=dev)  # warm-up
        for eid in progress(ids, desc="encdec protocol", unit="event"):
            hits = store.read_event(eid).hits
            c, n = next_hit_accuracy(model, hits, margin=model.margin, device=dev)
            correct, total = correct + c, total + n
            t0 = time.perf_counter()
            tracks, seeds, _ = reconstruct_event(model, hits, tracking, device=dev)
            wall.append((time.perf_counter() - t0) * 1e3)
            n_seeds += len(seeds)
            scores.append(seed_excluded_scores(hits, tracks, seeds))
    result = {
        "next_hit_accuracy": correct / total if total else None,
        "n_next_hit_predictions": int(total),
        "margin": float(model.margin),
        "seed_excluded_trackml_score": float(np.mean([s["trackml_score"] for s in scores])),
        "seed_excluded_fit_accuracy": float(np.mean([s["fit_accuracy"] for s in scores])),
        "truth_seeded_wall_ms_median": float(np.median(wall)),
        "truth_seeded_wall_ms_p90": float(np.percentile(wall, 90)),
        "n_events": int(len(ids)),
        "n_seeds": int(n_seeds),
        "device": dev.type,
        "seeds": "truth (first three hits of every particle with >= 3 hits; excluded from the scores)",
    }
    log.info("encdec protocol on %d events: next-hit accuracy %.3f (%d predictions), seed-excluded "
             "FitAccuracy %.3f, TrackML score %.3f, %.1f ms per event", len(ids),
             result["next_hit_accuracy"] or 0.0, total,
             result["seed_excluded_fit_accuracy"], result["seed_excluded_trackml_score"],
             result["truth_seeded_wall_ms_median"])
    if out is not None:
        write_json(out, result)
    return result
