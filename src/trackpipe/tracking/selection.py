"""Choosing tracking parameters on the validation split (never on test): the grid point with the best
mean TrackML score over the given events (HDBSCAN's grid for regressors, the noise rule and event-prior EM for classifiers)."""

from __future__ import annotations

import itertools

import numpy as np

from .assign import (class_probabilities, classes_from_probabilities, track_class_candidates, tracks_from_classes,
                     tracks_from_regression)
from ..metrics.score import trackml_score_of_labels as trackml_score


def select_hdbscan(events, *, min_cluster_size, min_samples) -> tuple[dict, list[dict]]:
    """events: iterable of (points, particle_id, weight) per validation event.

    Returns the best {"min_cluster_size", "min_samples", "val_score"} and one row per grid point.
    Ties go to the first grid point (smaller parameters), so the choice is deterministic.
    """
    events = list(events)
    rows = []
    for mcs, ms in itertools.product(min_cluster_size, min_samples):
        scores = [trackml_score(pid, w, tracks_from_regression(pts, min_cluster_size=mcs, min_samples=ms))
                  for pts, pid, w in events]
        rows.append({"min_cluster_size": int(mcs), "min_samples": int(ms), "val_score": float(np.mean(scores))})
    best = max(rows, key=lambda r: r["val_score"])
    return best, rows


def select_class_rule(events, *, noise_probability, prior_iterations, noise_class: int) -> tuple[dict, list[dict]]:
    """events: iterable of (logits (hits, classes), particle_id, weight) per validation event.

    Returns the best {"noise_probability", "prior_iterations", "val_score"} over the grid of noise rules
    (None = argmax) and event-prior EM rounds (0 = none; see `assign.classes_with_noise_rule`), and one row
    per grid point; ties go to the earlier grid point.
    """
    # per event once: the probabilities and every hit's candidate track classes, shared by all grid points
    events = [(prob, track_class_candidates(prob, noise_class), pid, w)
              for prob, pid, w in ((class_probabilities(z), pid, w) for z, pid, w in events)]
    rows = []
    for p, it in itertools.product(noise_probability, prior_iterations):
        scores = [trackml_score(pid, w, tracks_from_classes(classes_from_probabilities(prob, noise_class, p, it, cand),
                                                            noise_class))
                  for prob, cand, pid, w in events]
        rows.append({"noise_probability": p, "prior_iterations": int(it), "val_score": float(np.mean(scores))})
    best = max(rows, key=lambda r: r["val_score"])
    return best, rows
