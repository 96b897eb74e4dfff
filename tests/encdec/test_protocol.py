"""EncDec's paper protocol: next-hit accuracy with its margin, seed-excluded scores, the workflow function."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from trackpipe.metrics import fit_accuracy, trackml_score
from trackpipe.models.encdec import EncDec
from trackpipe.tracking.encdec_decode import next_hit_accuracy, seed_excluded_scores

torch.set_num_threads(1)


class _Extrapolator(EncDec):
    """Predicts the next hit as the last hit plus (1 + bias) times the last step: exact on straight,
    equally spaced tracks when bias is 0, off by bias x step otherwise."""

    bias = 0.0

    def decode(self, seq_x, memory, memory_valid=None, track_event=None):
        mm = self.to_mm(seq_x)
        step = torch.zeros_like(mm)
        step[:, 1:] = mm[:, 1:] - mm[:, :-1]
        return (mm + (1 + self.bias) * step - self.input_mean) / self.input_std, torch.full(seq_x.shape[:2], -5.0)


def _lines(lengths, spacing=50.0):
    """Straight tracks from the origin, equally spaced hits (hit k at distance (k + 1) x spacing)."""
    rows = []
    for pid, n in enumerate(lengths, start=1):
        direction = np.array([np.cos(pid), np.sin(pid), 0.3 * pid - 0.5])
        direction /= np.linalg.norm(direction)
        pts = np.arange(1, n + 1)[:, None] * spacing * direction
        rows.append(pd.DataFrame({"x": pts[:, 0], "y": pts[:, 1], "z": pts[:, 2], "particle_id": pid}))
    hits = pd.concat(rows, ignore_index=True)
    return hits.assign(event_id=1, hit_id=np.arange(1, len(hits) + 1), weight=1.0 / len(hits))


def _model(bias):
    m = _Extrapolator(input_mean=[0, 0, 0], input_std=[100, 100, 100], d_model=8, n_heads=2, d_ff=8,
                      n_inducing=2, max_track_length=8).eval()
    m.bias = bias
    return m


def test_next_hit_accuracy_counts_predictions_after_the_seed_and_applies_the_margin():
    hits = _lines([6, 4, 2, 10])  # the 2-hit track has no seed; the 10-hit one is cut at 8 hits
    expected_predictions = (6 - 3) + (4 - 3) + (8 - 3)
    assert next_hit_accuracy(_model(0.0), hits) == (expected_predictions, expected_predictions)
    # A 50 mm step overshot by 19 % misses by 9.5 mm: inside 5 % of |t| where |t| >= 190 mm, i.e. for
    # next hits k >= 4 (k counts from 1, hit k at 50 k mm). Predictions are made for next hits 4..n.
    correct, total = next_hit_accuracy(_model(0.19), hits, margin=0.05)
    assert (correct, total) == (expected_predictions, expected_predictions)
    # 58 % overshoot misses by 29 mm: correct only where |t| >= 580 mm, i.e. k >= 12: never here.
    assert next_hit_accuracy(_model(0.58), hits, margin=0.05)[0] == 0
    # ... but a 10 % margin accepts k >= 6: hit 6 of track 1 and hits 6, 7, 8 of track 4.
    assert next_hit_accuracy(_model(0.58), hits, margin=0.1)[0] == 4


def test_seed_excluded_scores_drop_the_seed_hits_from_truth_and_submission():
    hits = _lines([7, 7])
    seeds = np.array([[0, 1, 2], [7, 8, 9]])
    # Seeds and one more hit right (4 of 7: a majority), the other hits each on a track of their own.
    tracks = np.array([0, 0, 0, 0, 10, 11, 12, 1, 1, 1, 1, 13, 14, 15])
    full = hits[["event_id", "hit_id"]].assign(track_id=tracks)
    truth = hits[["event_id", "hit_id", "particle_id", "weight"]]
    assert trackml_score(truth, full) > 0.4  # the seed halves carry the full-event score
    excluded = seed_excluded_scores(hits, tracks, seeds)
    assert excluded == pytest.approx({"trackml_score": 0.0, "fit_accuracy": 0.0})
    # Perfect continuation: the seed-excluded score is 1 even though the seeds were given.
    perfect = np.repeat([0, 1], 7)
    assert seed_excluded_scores(hits, perfect, seeds) == pytest.approx({"trackml_score": 1.0, "fit_accuracy": 1.0})
    # Half of particle 2's non-seed hits on another track: equals the score of the non-seed hits
    # computed directly (particle 1 only: 0.5).
    half = perfect.copy()
    half[[11, 12]] = [20, 20]
    keep = np.ones(14, bool)
    keep[seeds.ravel()] = False
    sub = full.assign(track_id=half)[keep]
    expected = {"trackml_score": trackml_score(truth[keep], sub), "fit_accuracy": fit_accuracy(truth[keep], sub)}
    assert seed_excluded_scores(hits, half, seeds) == pytest.approx(expected)
    assert expected["trackml_score"] == pytest.approx(0.5)


@pytest.fixture(scope="module")
def tiny_encdec(tmp_path_factory):
    from trackpipe.io.store import write_store
    from trackpipe.sim.redvid import simulate_redvid
    from trackpipe.train.loop import train

    root = tmp_path_factory.mktemp("encdec_protocol")
    write_store(root / "d", simulate_redvid({"n_tracks": [3, 6]}, range(6), 5))
    cfg = {"architecture": {"d_model": 16, "n_heads": 2, "d_ff": 16, "n_inducing": 4},
           "training": {"batch_size": 2}}
    train("encdec", root / "d", root / "m", config=cfg, epochs=1, seed=0, threads=1)
    return root


def test_evaluate_encdec_protocol_aggregates_the_events(tiny_encdec):
    from trackpipe.encdec_protocol import evaluate_encdec_protocol
    from trackpipe.io.store import EventStore
    from trackpipe.predict import load_model
    from trackpipe.tracking.encdec_decode import event_seeds

    out = tiny_encdec / "protocol.json"
    result = evaluate_encdec_protocol(tiny_encdec / "m", tiny_encdec / "d", out, threads=1)
    assert json.loads(out.read_text()) == result
    model, cfg, _ = load_model(tiny_encdec / "m", torch.device("cpu"))
    store = EventStore(tiny_encdec / "d")
    counts = np.array([next_hit_accuracy(model, store.read_event(e).hits) for e in store.event_ids])
    assert result["n_next_hit_predictions"] == counts[:, 1].sum() > 0
    assert result["next_hit_accuracy"] == pytest.approx(counts[:, 0].sum() / counts[:, 1].sum())
    # Truth seeds: one per particle with >= 3 hits.
    n_seeds = sum(len(event_seeds(store.read_event(e).hits, "truth")) for e in store.event_ids)
    assert result["n_seeds"] == n_seeds
    assert 0 <= result["seed_excluded_fit_accuracy"] <= 1 and 0 <= result["seed_excluded_trackml_score"] <= 1
    assert result["n_events"] == 6 and result["truth_seeded_wall_ms_median"] > 0


def test_evaluate_encdec_protocol_refuses_another_model(tiny_encdec, tmp_path):
    import shutil

    from trackpipe.encdec_protocol import evaluate_encdec_protocol
    from trackpipe.errors import DataError

    other = tmp_path / "m"
    shutil.copytree(tiny_encdec / "m", other)
    cfg = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**cfg, "model": "enccla"}))
    with pytest.raises(DataError, match="encdec"):
        evaluate_encdec_protocol(other, tiny_encdec / "d", threads=1)


def test_encdec_predicts_a_store_without_truth_but_not_from_truth_seeds(tiny_encdec, tmp_path):
    """Geometric seeds need no truth: the same tracks with or without it; truth seeds refuse by name."""
    import shutil

    from trackpipe.errors import DataError
    from trackpipe.io.store import Event, EventStore, empty_particles, write_store
    from trackpipe.io.submission import read_submission
    from trackpipe.predict import predict
    from trackpipe.schema import TRUTH_COLUMNS

    bare = write_store(tmp_path / "bare", (Event(ev.event_id, ev.hits.drop(columns=list(TRUTH_COLUMNS)),
                                                 empty_particles())
                                           for ev in EventStore(tiny_encdec / "d").iter_events()))
    predict(tiny_encdec / "m", tiny_encdec / "d", tmp_path / "with.csv", warmup=0)
    predict(tiny_encdec / "m", bare, tmp_path / "without.csv", warmup=0)
    pd.testing.assert_frame_equal(read_submission(tmp_path / "with.csv"), read_submission(tmp_path / "without.csv"))
    truth_seeded = tmp_path / "m"
    shutil.copytree(tiny_encdec / "m", truth_seeded)
    cfg = json.loads((truth_seeded / "config.json").read_text())
    cfg["tracking"]["seeds"] = "truth"
    (truth_seeded / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(DataError, match="truth seeds .* needs truth") as e:
        predict(truth_seeded, bare, tmp_path / "s.csv", warmup=0)
    assert e.value.file == str(bare)
