import numpy as np
import pandas as pd
import pytest

from trackpipe.metrics import trackml_score
from trackpipe.schema import TIMING
from trackpipe.sim.redvid import simulate_redvid
from trackpipe.tracking.helix_dbscan import helix_dbscan_labels
from trackpipe.tracking.runner import helix_dbscan_tracker, run_tracker


def _score(hits, labels):
    truth = hits[["hit_id", "particle_id", "weight"]]
    sub = pd.DataFrame({"hit_id": hits.hit_id, "track_id": labels})
    return trackml_score(truth, sub)


@pytest.mark.parametrize("track_type,minimum", [("linear", 0.9), ("helical_expanding", 0.8)])
def test_redvid_tracks_found(track_type, minimum):
    events = list(simulate_redvid({"track_types": [track_type], "n_tracks": [10, 50]}, range(4), 7))
    scores = []
    for ev in events:
        labels = helix_dbscan_labels(ev.hits.x, ev.hits.y, ev.hits.z, {"unrolling": "linear"})
        assert labels.shape == (len(ev.hits),) and labels.min() == 0
        scores.append(_score(ev.hits, labels))
    assert np.mean(scores) > minimum


def test_real_trackml_event(trackml_event):
    h = trackml_event.hits
    labels = helix_dbscan_labels(h.x, h.y, h.z)
    # Public helix-unrolling kernels score 0.2-0.55 on full events; this sub-sampled event is sparser.
    assert 0.35 < _score(h, labels) < 1.0
    # A wrong unrolling (straight lines through the origin) must do clearly worse on curved tracks.
    assert _score(h, helix_dbscan_labels(h.x, h.y, h.z, {"curvature_max": 1e-9, "n_curvatures": 1})) < \
        _score(h, labels) - 0.1


def test_unknown_parameter_rejected():
    with pytest.raises(ValueError, match="unknown helix-dbscan parameter"):
        helix_dbscan_labels([1.0], [1.0], [1.0], {"epsilon": 0.1})


def test_runner_writes_submission_and_timing(tmp_path):
    from trackpipe.io.store import write_store
    from trackpipe.io.submission import read_submission

    events = list(simulate_redvid({"track_types": ["linear"], "n_tracks": [10, 20]}, range(3), 1))
    write_store(tmp_path / "s", events)
    sub = run_tracker(tmp_path / "s", helix_dbscan_tracker(), tmp_path / "sub.csv", timing_csv=tmp_path / "t.csv")
    assert len(read_submission(tmp_path / "sub.csv")) == sum(len(e.hits) for e in events) == len(sub)
    timing = pd.read_csv(tmp_path / "t.csv")
    assert list(timing.columns) == TIMING.names
    # No network: all of its work is CPU side, nothing is filed as device (GPU side) time.
    assert timing.device_ms.isna().all() and (timing.host_cpu_ms > 0).all()
    assert (timing.wall_ms > 0).all()
