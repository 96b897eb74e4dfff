"""Track assignment (argmax classes, HDBSCAN), the selection score and the parameter choice."""

from __future__ import annotations

import numpy as np
import pytest

from trackpipe.tracking.assign import tracks_from_classes, tracks_from_regression
from trackpipe.metrics.score import trackml_score_of_labels as trackml_score
from trackpipe.tracking.selection import select_hdbscan


def reference_score(pid, w, tid):
    """The TrackML score written as plain loops over tracks."""
    total = 0.0
    for t in np.unique(tid):
        in_t = tid == t
        particles, counts = np.unique(pid[in_t], return_counts=True)
        best = particles[np.argmax(counts)]
        common = in_t & (pid == best)
        if best != 0 and 2 * common.sum() > in_t.sum() and 2 * common.sum() > (pid == best).sum():
            total += w[common].sum()
    return total / w.sum()


def test_score_matches_reference_on_random_assignments():
    rng = np.random.default_rng(0)
    for _ in range(20):
        pid = rng.integers(0, 8, 60)
        w = np.where(pid == 0, 0.0, rng.uniform(0.1, 1.0, 60))
        truth_like = np.where(rng.random(60) < 0.7, pid, rng.integers(0, 12, 60))
        assert trackml_score(pid, w, truth_like) == pytest.approx(reference_score(pid, w, truth_like))
    pid = np.array([1, 1, 2, 2, 0])
    assert trackml_score(pid, (pid > 0).astype(float), pid) == 1.0


def test_classes_to_tracks_noise_become_singletons():
    t = tracks_from_classes(np.array([3, 3, 9, 1, 9]), noise_class=9)
    assert t[0] == t[1] and t[3] == 1 and t[2] != t[4] and len(set(t)) == 4 and (t >= 0).all()


def test_hdbscan_recovers_separated_blobs():
    rng = np.random.default_rng(1)
    centres = rng.uniform(-10, 10, (12, 3))
    pid = np.repeat(np.arange(1, 13), 8)
    pts = centres[pid - 1] + rng.normal(0, 0.01, (len(pid), 3))
    tracks = tracks_from_regression(pts, min_cluster_size=3, min_samples=1)
    assert trackml_score(pid, np.ones(len(pid)), tracks) == 1.0
    assert (tracks_from_regression(pts[:2], min_cluster_size=3, min_samples=1) >= 0).all()


def test_selection_prefers_the_parameters_that_score_best():
    rng = np.random.default_rng(2)
    events = []
    for _ in range(3):
        # Tracks of 4 hits: min_cluster_size 5 cannot form them, 3 can.
        pid = np.repeat(np.arange(1, 9), 4)
        pts = rng.uniform(-10, 10, (8, 3))[pid - 1] + rng.normal(0, 0.01, (32, 3))
        events.append((pts, pid, np.ones(32)))
    best, rows = select_hdbscan(events, min_cluster_size=[5, 3], min_samples=[1])
    assert best["min_cluster_size"] == 3 and best["val_score"] == 1.0
    assert [r["min_cluster_size"] for r in rows] == [5, 3] and rows[0]["val_score"] < 0.5
