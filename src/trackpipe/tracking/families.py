"""Each encoder family's two tracking hooks (`models.registry.ModelSpec.select` and `.to_tracks`).

* ``select(model, cfg, prep, val_data, device, amp) -> dict | None``: runs after training on the first
  ``tracking.selection_events`` validation events, with the best weights loaded and the model in eval
  mode (`train.loop._finalise` does the swap and writes the result); returns what goes into
  ``prep.clustering`` (and so into preprocessing.json), or None when the family chooses nothing.
* ``to_tracks(outputs, batch, prep) -> track id per hit``: one event's network outputs (batch of one,
  as `predict` runs it) and the input batch it came from (the locality block tables ride in
  ``batch["mask"].extra``) become disjoint track ids, with the parameters `select` chose.

Families: classification (EncCla, JM: class per hit, the noise rule and event-prior EM chosen on the
TrackML score), regression (EncReg: HDBSCAN on the predicted parameters, its grid chosen on the TrackML
score), embedding (contrastive: track formation from the embeddings, its similarity threshold chosen on
the DM efficiency at pT > 0.9 GeV).
EncDec and the U-Net run their own whole inference (`ModelSpec.predict`) instead.
"""

from __future__ import annotations

import logging
from typing import Callable

import numpy as np
import torch

from ..train.data import EventArrays, collate
from .assign import classes_with_noise_rule, tracks_from_classes, tracks_from_regression
from .embedding import OBJECTIVE, saved_tracking_params, select_threshold, tracking_params, tracks_from_embedding
from .selection import select_class_rule, select_hdbscan

log = logging.getLogger(__name__)


def validation_outputs(model, val_data: EventArrays, n_events, device: torch.device, amp: tuple[bool, torch.dtype],
                       keep: Callable[[int, dict, dict], object]) -> list:
    """[keep(i, batch, outputs)] for the first `n_events` validation events, one event per forward pass,
    without gradients and under the training run's autocast setting (`amp` = (enabled, dtype))."""
    kept = []
    with torch.no_grad(), torch.autocast(device.type, dtype=amp[1], enabled=amp[0]):
        for i in range(min(len(val_data), int(n_events))):
            batch = collate(val_data, [i], device)
            kept.append(keep(i, batch, model(batch)))
    return kept


def classification_select(model, cfg: dict, prep, val_data: EventArrays, device, amp) -> dict:
    """The noise rule (`tracking.noise_probability`) and the rounds of event-prior EM
    (`tracking.prior_iterations`, `assign.classes_with_noise_rule`) with the best mean TrackML score over
    the validation events; ties -> the earlier grid point."""
    tracking = cfg["tracking"]

    def logits(i, batch, out):
        ev = val_data.event(i)
        return out["logits"][0].float().cpu().numpy(), ev["particle_id"], ev["weight"]

    events = validation_outputs(model, val_data, tracking["selection_events"], device, amp, logits)
    best, rows = select_class_rule(events, noise_probability=tracking["noise_probability"],
                                   prior_iterations=tracking["prior_iterations"], noise_class=prep.noise_class)
    log.info("class rule on %d validation events: noise_probability %s, prior_iterations %d (%s)", len(events),
             best["noise_probability"], best["prior_iterations"], rows)
    return {"noise_probability": best["noise_probability"], "prior_iterations": best["prior_iterations"],
            "val_score": best["val_score"], "grid": rows, "selection_events": len(events)}


def classification_tracks(outputs: dict, batch: dict, prep) -> np.ndarray:
    """Track id = each hit's class under the selected noise rule and event-prior EM (argmax for models
    trained before either existed); predicted-noise hits become singletons."""
    classes = classes_with_noise_rule(outputs["logits"][0].float().cpu().numpy(), prep.noise_class,
                                      prep.clustering.get("noise_probability"),
                                      int(prep.clustering.get("prior_iterations", 0)))
    return tracks_from_classes(classes, prep.noise_class)


def regression_select(model, cfg: dict, prep, val_data: EventArrays, device, amp) -> dict:
    """The HDBSCAN grid point with the best mean TrackML score over the validation events."""
    tracking = cfg["tracking"]

    def points(i, batch, out):
        ev = val_data.event(i)
        return out["pred"][0].float().cpu().numpy(), ev["particle_id"], ev["weight"]

    events = validation_outputs(model, val_data, tracking["selection_events"], device, amp, points)
    best, rows = select_hdbscan(events, min_cluster_size=tracking["min_cluster_size"],
                                min_samples=tracking["min_samples"])
    log.info("HDBSCAN on %d validation events: %s", len(events), best)
    return {**best, "grid": rows, "selection_events": len(events)}


def regression_tracks(outputs: dict, batch: dict, prep) -> np.ndarray:
    """HDBSCAN on the predicted track parameters with the selected grid point; its noise -> singletons."""
    return tracks_from_regression(outputs["pred"][0].float().cpu().numpy(),
                                  min_cluster_size=prep.clustering["min_cluster_size"],
                                  min_samples=prep.clustering["min_samples"])


def embedding_select(model, cfg: dict, prep, val_data: EventArrays, device, amp) -> dict:
    """Track formation's similarity threshold, chosen on the DM efficiency at pT > 0.9 GeV pooled over the
    validation events (`tracking.embedding.select_threshold`); every candidate's metrics go into ``grid``."""
    tracking = cfg["tracking"]
    params = tracking_params(tracking)

    def embedded(i, batch, out):
        return val_data.event_ids[i], out["embedding"][0].float(), val_data.blocks[i], val_data.event(i)

    events = validation_outputs(model, val_data, tracking["selection_events"], device, amp, embedded)
    threshold, rows = select_threshold(events, params, tracking["thresholds"], tracking.get("layer_limits"),
                                       tracking.get("helix_quantile"))
    chosen = next(r for r in rows if r["chosen"])
    params["max_hits_per_layer"], params["helix_tolerance"] = chosen["max_hits_per_layer"], chosen["helix_tolerance"]
    if not rows[0]["n_selected_particles"]:
        log.warning("no particle with pT > 0.9 GeV on >= 3 layers in %d validation event(s): the track-formation "
                    "threshold is chosen on the TrackML score alone", len(events))
    log.info("track formation on %d validation events: threshold %s, max hits per layer %s, helix tolerance %s, "
             "chosen on %s; the best threshold of each variant (every row is in preprocessing.json):\n%s", len(events),
             threshold, params["max_hits_per_layer"], params["helix_tolerance"], OBJECTIVE, _best_per_variant(rows))
    return {**params, "threshold": threshold, "objective": OBJECTIVE, "grid": rows, "selection_events": len(events)}


def _best_per_variant(rows: list[dict]) -> str:
    """One line per (helix test, layer limit) of the selection grid: its best threshold on the objective."""
    def dm(r):  # None without selected particles (no momenta): the TrackML score decides, as in the selection
        return (-np.inf if r["dm_efficiency"] is None else r["dm_efficiency"], r["trackml_score"])

    best: dict = {}
    for r in rows:
        key = (r["helix_tolerance"] is not None, r["max_hits_per_layer"])
        if key not in best or dm(r) > dm(best[key]):
            best[key] = r
    return "\n".join(f"  helix test {'on ' if helix else 'off'}, max hits per layer {limit}: DM efficiency "
                     f"{'n/a' if r['dm_efficiency'] is None else format(r['dm_efficiency'], '.3f')} at threshold "
                     f"{r['threshold']} (TrackML score {r['trackml_score']:.3f})" for (helix, limit), r in sorted(best.items()))


def embedding_tracks(outputs: dict, batch: dict, prep) -> np.ndarray:
    """Track formation from the embeddings inside the event's locality clusters, selected parameters."""
    return tracks_from_embedding(outputs["embedding"][0], batch["mask"].extra["blocks"],
                                 **saved_tracking_params(prep.clustering), layer=batch.get("layer"),
                                 xyz=batch.get("xyz"))
