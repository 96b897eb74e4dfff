"""gnn_tracking-convention efficiencies, fake and duplicate rates: a hand-made event worked out by hand,
and random submissions against a literal per-cluster reference."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from metrics_reference import reference_tracking_metrics
from metrics_synthetic import MODES, random_event, random_tracks, submission_for
from trackpipe.metrics import (double_majority_efficiency, duplicate_rate, fake_rate, hit_classification_accuracy,
                               lhc_efficiency, match_tables, perfect_efficiency, timing_summary, tracking_metrics,
                               tracking_metrics_per_event)

# particle id -> (pT GeV, eta, [(volume, layer) per hit], [track per hit])
HAND = {
    10: (2.0, 0.5, [(8, 2), (8, 4), (8, 6), (8, 8), (13, 2), (13, 4)], [101] * 6),  # P1: one perfect track
    20: (1.5, 0.0, [(7, 2), (8, 2), (9, 2), (8, 4)], [102, 102, 102, 103]),  # P2: 4 (volume, layer) pairs, 2 layer ids
    30: (0.5, 0.0, [(8, 2), (8, 4), (8, 6), (8, 8), (13, 2)], [105] * 5),  # P3: below 0.9 GeV
    40: (3.0, 0.0, [(8, 2), (8, 2), (8, 4), (8, 4)], [106] * 4),  # P4: only 2 layers, not reconstructable
    50: (1.0, 4.5, [(9, 2), (9, 4), (9, 6), (9, 8), (9, 10), (9, 12)], [107] * 3 + [108] * 3),  # P5: |eta| > 4
    60: (5.0, -2.0, [(7, 2), (7, 4), (7, 6), (7, 8)], [102, 103, 103, 104]),  # P6
    70: (1.2, -1.0, [(8, 2), (8, 4), (8, 6), (8, 8), (13, 2), (13, 4), (13, 6), (13, 8)], [110] * 5 + [111] * 3),
    80: (2.0, 1.0, [(8, 2), (8, 4), (8, 6), (8, 8)], [112, 112, 113, 113]),  # P8: ties with P9 in track 112
    90: (0.2, 1.0, [(9, 2), (9, 4), (9, 6), (9, 8)], [112, 112, 114, 114]),  # P9: below 0.9 GeV
    0: (math.nan, math.nan, [(8, 2), (8, 4), (13, 2)], [109] * 3),  # noise
}


def hand_event(rename=None):
    rename = rename or {}
    hits, particles, hit_id = [], [], 1
    for pid, (pt, eta, layers, tracks) in HAND.items():
        pid = rename.get(pid, pid)
        for (vol, lay), trk in zip(layers, tracks):
            hits.append((1, hit_id, pid, vol, lay, trk))
            hit_id += 1
        if pid:
            particles.append((1, pid, pt, 0.0, pt * math.sinh(eta), 0.0))
    h = pd.DataFrame(hits, columns=["event_id", "hit_id", "particle_id", "volume_id", "layer_id", "track_id"])
    p = pd.DataFrame(particles, columns=["event_id", "particle_id", "px", "py", "pz", "vz"])
    return h.drop(columns="track_id"), p, h[["event_id", "hit_id", "track_id"]]


def test_hand_made_event_default_cuts():
    hits, particles, sub = hand_event()
    m = tracking_metrics(hits, particles, sub)
    # Selected particles: P1, P2, P6, P7, P8 (P3, P9 fail pT >= 0.9; P5 fails |eta| < 4; P4 has 2 layers) = 5.
    assert m["n_selected_particles"] == 5
    # DM: P1 (track 101: 6/6, 6/6), P2 (102: 3/4 pure, 3/4 of P2), P7 (110: 5/5, 5/8). P6's best is track
    # 103 (2/3 pure but exactly 2/4 of P6: fails), P8 only reaches half -> 3/5.
    assert m["dm_efficiency"] == pytest.approx(3 / 5)
    # Perfect: only P1 -> 1/5.
    assert m["perfect_efficiency"] == pytest.approx(1 / 5)
    # Selected clusters (>= 3 hits, majority selected): 101 (P1), 102 (P2), 103 (P6), 110, 111 (P7), 112 (tie
    # 2-2 between P8 and P9 -> lowest id P8, selected) = 6. 104, 113, 114 are too small; 105-109 have
    # unselected majorities (or noise).
    assert m["n_selected_clusters"] == 6
    # LHC (purity > 0.75): 101, 110, 111 (102 is exactly 0.75: fails) -> 3/6.
    assert m["lhc_efficiency"] == pytest.approx(3 / 6)
    # Fake = not DM: 103, 111, 112 -> 3/6; not perfect: all but 101 -> 5/6; not LHC -> 3/6.
    assert m["fake_rate"] == pytest.approx(3 / 6)
    assert m["fake_rate_perfect"] == pytest.approx(5 / 6)
    assert m["fake_rate_lhc"] == pytest.approx(3 / 6)
    # Duplicates: P7 has two purity-matched clusters (110 with 5 hits, 111 with 3): 111 is one -> 1/6.
    assert m["duplicate_rate"] == pytest.approx(1 / 6)
    for fn, key in ((double_majority_efficiency, "dm_efficiency"), (perfect_efficiency, "perfect_efficiency"),
                    (lhc_efficiency, "lhc_efficiency"), (fake_rate, "fake_rate"), (duplicate_rate, "duplicate_rate")):
        assert fn(hits, particles, sub) == m[key]


def test_hand_made_event_tie_break_decides_cluster_selection():
    # Same event with P8 renamed 95 > 90: track 112's 2-2 tie now goes to P9 (pT 0.2, unselected).
    hits, particles, sub = hand_event({80: 95})
    m = tracking_metrics(hits, particles, sub)
    assert m["n_selected_particles"] == 5 and m["dm_efficiency"] == pytest.approx(3 / 5)
    assert m["n_selected_clusters"] == 5  # 101, 102, 103, 110, 111
    assert m["fake_rate"] == pytest.approx(2 / 5)  # 103, 111
    assert m["lhc_efficiency"] == pytest.approx(3 / 5)
    assert m["duplicate_rate"] == pytest.approx(1 / 5)


def test_hand_made_event_without_kinematic_cuts():
    hits, particles, sub = hand_event()
    m = tracking_metrics(hits, particles, sub, pt_min=None, max_eta=None)
    # Selected particles: every reconstructable one, all but P4 -> 8. DM: P1, P2, P3 (105), P7 -> 4/8.
    # (P5's 3 + 3 split gives exactly half of its 6 hits twice: no DM.) Perfect: P1, P3 -> 2/8.
    assert (m["n_selected_particles"], m["dm_efficiency"], m["perfect_efficiency"]) == (8, 4 / 8, 2 / 8)
    # Selected clusters: 101, 102, 103, 105, 107, 108, 110, 111, 112 = 9; LHC: 101, 105, 107, 108, 110, 111 -> 6/9;
    # not DM: 103, 107, 108, 111, 112 -> 5/9; duplicates: 108 (P5: 107 and 108 tie at 3 hits, lowest track id
    # 107 is the original) and 111 -> 2/9.
    assert m["n_selected_clusters"] == 9
    assert m["lhc_efficiency"] == pytest.approx(6 / 9)
    assert m["fake_rate"] == pytest.approx(5 / 9)
    assert m["duplicate_rate"] == pytest.approx(2 / 9)


def test_hand_made_event_min_cluster_size_one():
    hits, particles, sub = hand_event()
    m = tracking_metrics(hits, particles, sub, min_cluster_size=1)
    # Now 104 (P6's single hit) and 113 (P8's 2 hits) are valid and selected: 8 clusters.
    assert m["n_selected_clusters"] == 8
    # not DM: 103, 104 (1/4 of P6), 111, 112, 113 (exactly 2/4 of P8) -> 5/8.
    assert m["fake_rate"] == pytest.approx(5 / 8)
    # LHC: 101, 104, 110, 111, 113 -> 5/8.
    assert m["lhc_efficiency"] == pytest.approx(5 / 8)
    # Duplicates: P6 has 103 (2 hits, purity 2/3) and 104 (1 hit): 104 is one; plus 111 -> 2/8.
    assert m["duplicate_rate"] == pytest.approx(2 / 8)


def test_match_tables_columns():
    hits, particles, sub = hand_event()
    ptab, ctab = match_tables(hits, particles, sub)
    p = ptab.set_index("particle_id")
    assert p.loc[20, "n_layers"] == 4 and p.loc[20, "reconstructable"]  # (volume, layer) pairs, not layer ids
    assert p.loc[40, "n_layers"] == 2 and not p.loc[40, "reconstructable"]
    assert p.loc[70, "n_purity_matched"] == 2 and p.loc[70, "dm_matched"] and not p.loc[70, "perfect_matched"]
    assert 0 not in p.index  # noise is not a particle
    c = ctab.set_index("track_id")
    assert c.loc[112, "maj_particle_id"] == 80 and c.loc[112, "maj_frac"] == 0.5
    assert c.loc[111, "duplicate"] and not c.loc[110, "duplicate"]
    assert c.loc[109, "maj_particle_id"] == 0 and not c.loc[109, "selected"]
    assert c.loc[102, "pt"] == pytest.approx(1.5)  # kinematics of the majority particle


def test_per_event_counts_and_pooling():
    h1, p1, s1 = hand_event()
    h2, p2, s2 = hand_event({80: 95})
    hits = pd.concat([h1, h2.assign(event_id=2)])
    particles = pd.concat([p1, p2.assign(event_id=2)])
    sub = pd.concat([s1, s2.assign(event_id=2)])
    per_event = tracking_metrics_per_event(hits, particles, sub)
    assert per_event.loc[1, "fake_rate"] == pytest.approx(3 / 6) and per_event.loc[2, "fake_rate"] == pytest.approx(2 / 5)
    pooled = tracking_metrics(hits, particles, sub)
    assert pooled["fake_rate"] == pytest.approx((3 + 2) / (6 + 5))  # pooled, not the mean of 0.5 and 0.4
    assert pooled["dm_efficiency"] == pytest.approx(6 / 10)


@pytest.mark.parametrize("mode", MODES)
def test_rates_equal_reference_on_random_submissions(mode):
    rng = np.random.default_rng(100 + sum(map(ord, mode)))
    for i in range(12):
        hits, particles = random_event(rng, n_particles=int(rng.integers(2, 40)), n_noise=int(rng.integers(0, 20)))
        sub = submission_for(hits, random_tracks(rng, hits, mode), rng)
        cuts = {"pt_min": [0.9, 0.3, None][i % 3], "max_eta": [4.0, None, 2.5][i % 3],
                "min_cluster_size": [3, 1, 4][i % 3], "min_layers": [3, 2, 4][i % 3],
                "duplicate_purity": [0.5, 0.75, 0.5][i % 3]}
        got = tracking_metrics(hits, particles, sub, **cuts)
        pt = np.hypot(particles.px, particles.py).to_numpy()
        info = dict(zip(particles.particle_id, zip(pt, np.arcsinh(particles.pz.to_numpy() / pt))))
        ref = reference_tracking_metrics(list(zip(hits.hit_id, hits.particle_id, hits.volume_id, hits.layer_id)),
                                         info, dict(zip(sub.hit_id, sub.track_id)), **cuts)
        for key, value in ref.items():
            if math.isnan(value):
                assert math.isnan(got[key]), key
            else:
                assert got[key] == pytest.approx(value, abs=1e-12), (key, cuts)


def test_hit_classification_accuracy_excludes_padding():
    true = np.array([[1, 2, 3, 0], [4, 4, 0, 0]])
    pred = np.array([[1, 2, 0, 9], [4, 5, 7, 7]])
    mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], bool)
    # Real hits: (1,1) (2,2) (3,0) (4,4) (4,5) -> 3 of 5 correct.
    assert hit_classification_accuracy(true, pred, mask) == pytest.approx(3 / 5)
    # Without a mask the padded zeros count too: 1, 2, 4 correct of 8.
    assert hit_classification_accuracy(true, pred) == pytest.approx(3 / 8)
    assert math.isnan(hit_classification_accuracy(true, pred, np.zeros_like(mask)))


def test_timing_summary_drops_warmup():
    times = [250.0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    s = timing_summary(times, warmup=1)
    assert s == {"median": 5.5, "p90": pytest.approx(9.1), "mean": 5.5, "n": 10}
    assert timing_summary(times)["mean"] == pytest.approx(305 / 11)
    assert timing_summary([1.0, np.nan, 3.0])["n"] == 2
    assert timing_summary([1.0], warmup=3)["n"] == 0
