"""The vectorised TrackML score against a literal per-track reference, on hundreds of random cases."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metrics_reference import reference_majorities, reference_score
from metrics_synthetic import MODES, random_event, random_tracks, submission_for
import trackpipe
from trackpipe.errors import DataError
from trackpipe.metrics import (fit_accuracy, fit_accuracy_per_event, pixel_restricted_score, track_table,
                               trackml_score, trackml_score_per_event)
from trackpipe.metrics.score import restricted_truth
from trackpipe.weights import hit_weights


def _reference(hits, sub):
    rows = list(zip(hits.hit_id, hits.particle_id, hits.weight))
    return reference_score(rows, dict(zip(sub.hit_id, sub.track_id)))


@pytest.mark.parametrize("mode", MODES)
def test_score_equals_reference_on_random_submissions(mode):
    rng = np.random.default_rng(sum(map(ord, mode)))
    scores = []
    for _ in range(40):  # 8 modes x 40 = 320 random submissions
        hits, _ = random_event(rng, n_particles=int(rng.integers(1, 40)), n_noise=int(rng.integers(0, 30)))
        sub = submission_for(hits, random_tracks(rng, hits, mode), rng)
        got = trackml_score(hits, sub)
        assert got == pytest.approx(_reference(hits, sub), abs=1e-12)
        scores.append(got)
    if mode == "truth":
        assert np.allclose(scores, 1.0)
    elif mode in ("split", "merge", "shuffle", "mixed", "random"):
        assert min(scores) < 1.0  # the generator really produces imperfect submissions


def test_majority_tie_break_keeps_lowest_particle_id():
    rng = np.random.default_rng(5)
    n_ties = 0
    for _ in range(30):
        hits, _ = random_event(rng, n_particles=20)
        sub = submission_for(hits, random_tracks(rng, hits, "ties"), rng)
        table = track_table(hits, sub).set_index("track_id")
        ref = reference_majorities(list(zip(hits.hit_id, hits.particle_id, hits.weight)),
                                   dict(zip(sub.hit_id, sub.track_id)))
        for track, (major, major_nhits, nhits, major_weight) in ref.items():
            row = table.loc[track]
            assert (row.major_particle_id, row.major_nhits, row.nhits) == (major, major_nhits, nhits)
            assert row.major_weight == pytest.approx(major_weight, abs=1e-12)
        merged = sub.merge(hits, on=["event_id", "hit_id"])
        counts = merged.groupby(["track_id", "particle_id"]).size().unstack(fill_value=0)
        n_ties += int(((counts == counts.max(axis=1).to_numpy()[:, None]).sum(axis=1) > 1).sum())
    assert n_ties > 50  # ties were really exercised


def test_hand_made_tie_and_majority():
    # Track 7 holds 2 hits of particle 9 and 2 of particle 4: a tie, the library keeps particle 4.
    truth = pd.DataFrame({"hit_id": [1, 2, 3, 4, 5], "particle_id": [9, 9, 4, 4, 4], "weight": [.1, .1, .2, .2, .4]})
    sub = pd.DataFrame({"hit_id": [1, 2, 3, 4, 5], "track_id": [7, 7, 7, 7, 8]})
    row = track_table(truth, sub).set_index("track_id").loc[7]
    assert (row.major_particle_id, row.major_nhits, row.major_particle_nhits) == (4, 2, 3)
    assert row.major_weight == pytest.approx(0.4)
    assert not row.good  # purity exactly 2/4: fails
    # Track 8 = one of particle 4's three hits: purity 1 but 1/3 of the particle: not good either.
    assert trackml_score(truth, sub) == 0.0


def test_exactly_half_fails_double_majority():
    # Particle 1 has 4 hits (weights .25 each), particle 2 has 2 hits (weight 0), noise 0 has 2 hits.
    truth = pd.DataFrame({"hit_id": range(1, 9), "particle_id": [1, 1, 1, 1, 2, 2, 0, 0],
                          "weight": [.25, .25, .25, .25, 0, 0, 0, 0]})

    def score(tracks):
        return trackml_score(truth, pd.DataFrame({"hit_id": range(1, 9), "track_id": tracks}))

    # 2 of particle 1's 4 hits in a pure track: 2/4 of the particle is exactly half -> 0.
    assert score([1, 1, 2, 2, 3, 3, 4, 4]) == 0.0
    # 3 of 4 hits in a pure track -> good, weight .75.
    assert score([1, 1, 1, 2, 3, 3, 4, 4]) == pytest.approx(0.75)
    # all 4 hits plus 4 foreign hits: purity 4/8 exactly half -> 0.
    assert score([1, 1, 1, 1, 1, 1, 1, 1]) == 0.0
    # all 4 hits plus 3 foreign hits: purity 4/7 > .5 and 4/4 -> 1.
    assert score([1, 1, 1, 1, 1, 1, 1, 9]) == pytest.approx(1.0)


def test_truth_as_submission_scores_one_and_weights_are_normalised_by_the_truth_given():
    rng = np.random.default_rng(1)
    hits, _ = random_event(rng, n_particles=50)
    hits["weight"] *= 0.0513 / hits.weight.sum()  # like the sub-sampled real event
    sub = submission_for(hits, hits.particle_id.to_numpy(), rng)
    assert trackml_score(hits, sub) == pytest.approx(1.0, abs=1e-12)
    tracks = random_tracks(rng, hits, "shuffle")
    sub = submission_for(hits, tracks)
    scaled = hits.assign(weight=hits.weight * 37.0)
    assert trackml_score(scaled, sub) == pytest.approx(trackml_score(hits, sub), abs=1e-12)


def test_per_event_scores_and_mean_over_events():
    rng = np.random.default_rng(2)
    events = [random_event(rng, event_id=e, n_particles=15)[0] for e in (3, 11, 5)]
    subs = [submission_for(h, random_tracks(rng, h, "mixed")) for h in events]
    truth = pd.concat(events, ignore_index=True).sample(frac=1.0, random_state=0)
    sub = pd.concat(subs, ignore_index=True).sample(frac=1.0, random_state=1)
    per_event = trackml_score_per_event(truth, sub)
    assert list(per_event.index) == [3, 5, 11]
    for h, s in zip(events, subs):
        assert per_event[h.event_id.iloc[0]] == pytest.approx(_reference(h, s), abs=1e-12)
    assert trackml_score(truth, sub) == pytest.approx(per_event.mean())


def test_event_without_weight_has_no_score():
    truth = pd.DataFrame({"hit_id": [1, 2], "particle_id": [0, 0], "weight": [0.0, 0.0]})
    sub = pd.DataFrame({"hit_id": [1, 2], "track_id": [0, 0]})
    assert np.isnan(trackml_score(truth, sub))


def test_fit_accuracy_uses_unit_weights():
    # Particle 1: 3 hits, particle 2: 1 hit, noise: 2 hits; the weight column is deliberately odd.
    truth = pd.DataFrame({"hit_id": range(1, 7), "particle_id": [1, 1, 1, 2, 0, 0],
                          "weight": [5.0, 0.0, 0.0, 0.0, 9.0, 9.0]})
    perfect = pd.DataFrame({"hit_id": range(1, 7), "track_id": [1, 1, 1, 2, 0, 0]})
    assert fit_accuracy(truth, perfect) == 1.0
    # Particle 1 split 2 + 1: the 2-hit piece is good (2 of 3 hits), the 1-hit piece is not; particle 2's
    # single hit is its own good track (no minimum length) -> (2 + 1) of the 4 particle hits = 0.75.
    split = pd.DataFrame({"hit_id": range(1, 7), "track_id": [1, 1, 3, 2, 0, 0]})
    assert fit_accuracy(truth, split) == pytest.approx(3 / 4)
    # Noise glued to particle 2's track: purity 1/3 -> only the 2 hits of particle 1 count -> 0.5.
    glued = pd.DataFrame({"hit_id": range(1, 7), "track_id": [1, 1, 3, 2, 2, 2]})
    assert fit_accuracy(truth, glued) == pytest.approx(2 / 4)
    # REDVID weights (1 for track hits, 0 for noise): FitAccuracy is exactly the TrackML score.
    rng = np.random.default_rng(3)
    for mode in MODES:
        hits, _ = random_event(rng)
        hits["weight"] = (hits.particle_id != 0).astype(float)
        sub = submission_for(hits, random_tracks(rng, hits, mode))
        assert fit_accuracy_per_event(hits, sub).iloc[0] == pytest.approx(trackml_score(hits, sub), abs=1e-12)


def test_errors_name_event_and_column():
    rng = np.random.default_rng(4)
    hits, _ = random_event(rng, event_id=42)
    sub = submission_for(hits, hits.particle_id.to_numpy())
    cases = {
        "missing": sub.iloc[1:],
        "duplicated": pd.concat([sub, sub.iloc[[3]]]),
        "unknown": pd.concat([sub, pd.DataFrame({"event_id": [42], "hit_id": [10**9], "track_id": [1]})]),
    }
    for name, bad in cases.items():
        with pytest.raises(DataError) as err:
            trackml_score(hits, bad)
        assert err.value.event == 42 and err.value.column == "hit_id", name
    with pytest.raises(DataError, match="missing from the submission"):
        trackml_score(hits, cases["missing"])
    with pytest.raises(DataError, match="appears 2 times in the submission"):
        trackml_score(hits, cases["duplicated"])
    with pytest.raises(DataError, match="not in the truth"):
        trackml_score(hits, cases["unknown"])
    with pytest.raises(DataError, match="appears 2 times in the truth"):
        trackml_score(pd.concat([hits, hits.iloc[[0]]]), sub)
    other_event = pd.concat([sub, pd.DataFrame({"event_id": [43], "hit_id": [1], "track_id": [1]})])
    with pytest.raises(DataError) as err:
        trackml_score(hits, other_event)
    assert err.value.event == 43 and err.value.column == "event_id"


def test_real_event_scores_one_full_and_pixel_restricted(trackml_event):
    hits, particles = trackml_event.hits, trackml_event.particles
    assert hits.weight.sum() == pytest.approx(0.0513, abs=1e-4)  # sub-sampled: weights not renormalised
    sub = pd.DataFrame({"event_id": hits.event_id, "hit_id": hits.hit_id, "track_id": hits.particle_id})
    assert trackml_score(hits, sub) == 1.0
    assert pixel_restricted_score(hits, particles, sub) == pytest.approx(1.0, abs=1e-12)
    pixel = hits.volume_id.isin([7, 8, 9])
    assert pixel_restricted_score(hits, particles, sub[pixel.to_numpy()]) == pytest.approx(1.0, abs=1e-12)


def test_pixel_restriction_recomputes_weights_and_particle_counts(trackml_event):
    hits, particles = trackml_event.hits, trackml_event.particles
    pixel = hits.volume_id.isin([7, 8, 9]).to_numpy()
    truth = restricted_truth(hits, particles)
    expected = hit_weights(hits[pixel], particles)
    assert np.allclose(truth.weight.to_numpy(), expected) and truth.weight.sum() == pytest.approx(1.0)
    # Tracks split into their pixel part and their strip part: perfect on the pixel truth, but for the
    # full truth only the larger part of each particle can pass the double majority.
    tracks = hits.particle_id.to_numpy() * 2 + pixel
    sub = pd.DataFrame({"event_id": hits.event_id, "hit_id": hits.hit_id, "track_id": tracks})
    assert pixel_restricted_score(hits, particles, sub) == pytest.approx(1.0, abs=1e-12)
    full = trackml_score(hits, sub)
    assert full == pytest.approx(_reference(hits, sub), abs=1e-12)
    assert full < 0.9


def test_pixel_restriction_rejects_unknown_and_duplicated_hits(trackml_event):
    hits, particles = trackml_event.hits, trackml_event.particles
    sub = pd.DataFrame({"event_id": hits.event_id, "hit_id": hits.hit_id, "track_id": hits.particle_id})
    with pytest.raises(DataError, match="not in the truth"):
        pixel_restricted_score(hits, particles, pd.concat([sub, pd.DataFrame(
            {"event_id": [1], "hit_id": [10**9], "track_id": [0]})]))
    with pytest.raises(DataError, match="more than once"):
        pixel_restricted_score(hits, particles, pd.concat([sub, sub.iloc[[0]]]))
    pixel_hits = sub[hits.volume_id.isin([7, 8, 9]).to_numpy()]
    with pytest.raises(DataError, match="missing from the submission"):
        pixel_restricted_score(hits, particles, pixel_hits.iloc[1:])


def test_metrics_package_does_not_import_torch():
    code = "import sys, trackpipe.metrics, trackpipe.evaluate; assert 'torch' not in sys.modules, 'torch imported'"
    src = str(Path(trackpipe.__file__).parents[1])
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": src})
