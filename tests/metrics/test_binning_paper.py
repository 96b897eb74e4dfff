"""Fig. 4's rates in TrackFormers Part 1's sense: binned FitAccuracy and the all-tracks fake rate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from metrics_synthetic import random_event, random_tracks, submission_for
from trackpipe.metrics import match_tables, trackml_score_per_event
from trackpipe.metrics.binning import binned_rates, paper_tables


def hand_event():
    """Two particles (pT 1 and 5 GeV, 4 hits each) and 5 noise hits in four predicted tracks:

    T0 = 3 hits of p1 + 1 of p2 (good for p1), T1 = 3 hits of p2 + 1 noise (good for p2),
    T2 = 3 noise + the last hit of p1 (noise majority), T3 = 1 noise hit (too short to count).
    """
    pid = np.array([1, 1, 1, 2, 2, 2, 2, 0, 0, 0, 0, 1, 0])
    track = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3])
    weight = np.array([0.1, 0.1, 0.2, 0.1, 0.1, 0.1, 0.1, 0, 0, 0, 0, 0.2, 0])
    n = len(pid)
    hits = pd.DataFrame({"event_id": 0, "hit_id": np.arange(1, n + 1), "particle_id": pid, "weight": weight,
                         "volume_id": 8, "layer_id": 2 * np.arange(n) + 2})
    particles = pd.DataFrame({"event_id": 0, "particle_id": [1, 2], "px": [1.0, 5.0], "py": 0.0, "pz": 0.0,
                              "vz": 0.0})
    sub = pd.DataFrame({"event_id": 0, "hit_id": hits.hit_id, "track_id": track})
    return hits, particles, sub


def _row(out, metric, variable, i=0):
    return out[(out.metric == metric) & (out.variable == variable)].sort_values("lo_edge").iloc[i]


def test_fit_accuracy_and_track_fake_rate_by_hand():
    hits, particles, sub = hand_event()
    fit, tracks = paper_tables(hits, particles, sub, min_track_hits=4)
    ptab, ctab = match_tables(hits, particles, sub)
    out = binned_rates(ptab, ctab, fit=fit, tracks=tracks, variables=("pt",), bins={"pt": [0.0, 2.0, 10.0]},
                       n_resamples=20)
    # FitAccuracy: p1 keeps 0.1 + 0.1 + 0.2 of its 0.6, p2 keeps 0.3 of its 0.4 (its T0 hit is lost).
    assert _row(out, "fit_accuracy", "pt", 0).value == pytest.approx(0.4 / 0.6)
    assert _row(out, "fit_accuracy", "pt", 1).value == pytest.approx(0.3 / 0.4)
    assert _row(out, "fit_accuracy", "all").value == pytest.approx(0.7)
    assert _row(out, "fit_accuracy", "all").n == 2           # particles, not their weight
    # Fake rate: T0, T1, T2 count (T3 has 1 hit < 4); T2 (noise majority) is fake, binned with p1.
    assert _row(out, "track_fake_rate", "all").value == pytest.approx(1 / 3)
    assert _row(out, "track_fake_rate", "all").n == 3
    assert _row(out, "track_fake_rate", "pt", 0).value == pytest.approx(1 / 2)
    assert _row(out, "track_fake_rate", "pt", 1).value == 0.0
    # gnn_tracking never selects the noise-majority cluster, so its fake rate is 0 here.
    assert _row(out, "fake_rate", "all").value == 0.0
    assert tracks.set_index("track_id").particle_id.to_dict() == {0: 1, 1: 2, 2: 1, 3: 0}


def test_min_track_hits_and_paper_cuts():
    hits, particles, sub = hand_event()
    fit, tracks = paper_tables(hits, particles, sub, min_track_hits=5)   # no track counts
    assert not tracks.counted.any() and (fit.good_weight == 0).all()
    fit, tracks = paper_tables(hits, particles, sub, min_track_hits=1)   # T3 (pure noise) counts, unbinnable
    ptab, ctab = match_tables(hits, particles, sub)
    out = binned_rates(ptab, ctab, fit=fit, tracks=tracks, variables=("pt",), bins={"pt": [0.0, 2.0, 10.0]},
                       n_resamples=0, paper_cuts={"pt_min": None})
    assert _row(out, "track_fake_rate", "all").value == pytest.approx(2 / 4)
    assert out[(out.metric == "track_fake_rate") & (out.variable == "pt")].n.sum() == 3
    # A pT cut drops p1 (1 GeV) and every track led by it, and the pure-noise track, from the total.
    cut = binned_rates(ptab, ctab, fit=fit, tracks=tracks, variables=("pt",), n_resamples=0,
                       paper_cuts={"pt_min": 2.0})
    assert _row(cut, "fit_accuracy", "all").value == pytest.approx(0.75)
    assert _row(cut, "track_fake_rate", "all").n == 1


def test_fit_accuracy_total_is_the_trackml_score_without_length_cut():
    rng = np.random.default_rng(4)
    hits, particles = random_event(rng, n_particles=30)
    sub = submission_for(hits, random_tracks(rng, hits, "mixed"))
    fit, tracks = paper_tables(hits, particles, sub, min_track_hits=1)
    ptab, ctab = match_tables(hits, particles, sub)
    out = binned_rates(ptab, ctab, fit=fit, tracks=tracks, variables=(), n_resamples=0)
    score = trackml_score_per_event(hits, sub).iloc[0]
    assert 0 < score < 1
    assert _row(out, "fit_accuracy", "all").value == pytest.approx(score)


def test_bootstrap_band_over_events_brackets_the_value():
    rng = np.random.default_rng(5)
    frames = [random_event(rng, event_id=e, n_particles=30) for e in range(8)]
    hits = pd.concat([f[0] for f in frames], ignore_index=True)
    particles = pd.concat([f[1] for f in frames], ignore_index=True)
    sub = submission_for(hits, random_tracks(rng, hits, "mixed"))
    fit, tracks = paper_tables(hits, particles, sub)
    ptab, ctab = match_tables(hits, particles, sub)
    out = binned_rates(ptab, ctab, fit=fit, tracks=tracks, variables=("eta",), n_resamples=200,
                       metrics=["fit_accuracy", "track_fake_rate"])
    assert set(out.metric) == {"fit_accuracy", "track_fake_rate"}
    filled = out[out.n > 0]
    assert ((filled.ci_lo <= filled.value + 1e-12) & (filled.value <= filled.ci_hi + 1e-12)).all()
    assert (filled.ci_hi > filled.ci_lo).any()
    with pytest.raises(ValueError, match="needs the 'fit' table"):
        binned_rates(ptab, ctab, metrics=["fit_accuracy"])
