"""evaluate() outputs and the `trackpipe score` command, on the real TrackML event and a REDVID-like store."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from trackpipe.cli import main
from trackpipe.errors import DataError
from trackpipe.evaluate import evaluate, score_submission
from trackpipe.io.store import Event, normalise_event, write_store
from trackpipe.io.submission import write_submission
from trackpipe.metrics import trackml_score

HEADLINE = {"trackml_score", "fit_accuracy", "dm_efficiency", "perfect_efficiency", "lhc_efficiency", "fake_rate",
            "duplicate_rate", "n_events"}


def _copy(event: Event, eid: int) -> Event:
    return Event(eid, event.hits.assign(event_id=np.int64(eid)), event.particles.assign(event_id=np.int64(eid)))


def _truth_submission(hits: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"event_id": hits.event_id, "hit_id": hits.hit_id, "track_id": hits.particle_id})


@pytest.fixture(scope="module")
def trackml_store(tmp_path_factory, trackml_event):
    path = tmp_path_factory.mktemp("store") / "trackml"
    write_store(path, [_copy(trackml_event, e) for e in (1, 2, 3)])
    return path


def test_evaluate_writes_metrics_per_event_and_binned(trackml_store, trackml_event, tmp_path):
    rng = np.random.default_rng(0)
    subs = []
    for e in (1, 2, 3):
        s = _truth_submission(trackml_event.hits).assign(event_id=e)
        if e == 3:  # event 3: a fifth of the hits moved to random tracks
            moved = rng.random(len(s)) < 0.2
            s.loc[moved, "track_id"] = rng.choice(s.track_id.to_numpy(), moved.sum())
        subs.append(s)
    write_submission(tmp_path / "sub.csv", pd.concat(subs))
    pd.DataFrame({"event_id": [1, 2, 3], "n_hits": 5527, "device_ms": [900.0, 10.0, 20.0],
                  "host_cpu_ms": [50.0, 5.0, 7.0], "wall_ms": [1000.0, 12.0, 30.0]}).to_csv(tmp_path / "t.csv", index=False)
    out = tmp_path / "eval"
    m = evaluate(trackml_store, tmp_path / "sub.csv", out, timing_path=tmp_path / "t.csv", bootstrap=100, seed=1)
    assert json.loads((out / "metrics.json").read_text()) == m
    assert HEADLINE <= set(m) and "trackml_score_pixel" in m and m["n_events"] == 3
    per_event = pd.read_parquet(out / "per_event.parquet").set_index("event_id")
    assert per_event.loc[1, "trackml_score"] == 1.0 and per_event.loc[2, "trackml_score_pixel"] == pytest.approx(1)
    expected3 = trackml_score(trackml_event.hits.assign(event_id=3), subs[2])
    assert per_event.loc[3, "trackml_score"] == pytest.approx(expected3) and expected3 < 0.95
    assert m["trackml_score"] == pytest.approx((2 + expected3) / 3)
    assert HEADLINE - {"n_events"} <= set(per_event.columns)
    # Timing: the first (warm-up) event is left out.
    assert m["device_ms_median"] == 15.0 and m["wall_ms_p90"] == pytest.approx(12 + 0.9 * 18)
    assert m["timing_n_events"] == 2 and per_event.loc[1, "wall_ms"] == 1000.0
    binned = pd.read_parquet(out / "binned.parquet")
    assert list(binned.columns) == ["metric", "variable", "lo_edge", "hi_edge", "value", "ci_lo", "ci_hi", "n"]
    assert {"pt", "eta", "all"} <= set(binned.variable)
    total = binned[(binned.metric == "dm_efficiency") & (binned.variable == "all")].iloc[0]
    assert total.value == pytest.approx(m["dm_efficiency"]) and total.n == m["n_selected_particles"]
    # Fig. 4's FitAccuracy (TrackML weights, tracks >= 4 hits, pooled): the events weigh the same, so it is
    # close to the mean score; its eta bins have no pT cut (the paper's), unlike dm_efficiency's.
    fa = binned[(binned.metric == "fit_accuracy") & (binned.variable == "all")].iloc[0]
    assert fa.value == pytest.approx(m["trackml_score"], abs=0.01) and fa.value < 1
    assert m["fig4_selection"] == "tracks >= 4 hits, no pT or eta cut" and m["fig4_min_track_hits"] == 4
    fa_eta = binned[(binned.metric == "fit_accuracy") & (binned.variable == "eta")]
    assert fa_eta.n.sum() > total.n
    fake = binned[(binned.metric == "track_fake_rate") & (binned.variable == "all")].iloc[0]
    assert 0 < fake.value < 1
    # Same seed, same outputs.
    evaluate(trackml_store, tmp_path / "sub.csv", tmp_path / "again", bootstrap=100, seed=1)
    pd.testing.assert_frame_equal(binned, pd.read_parquet(tmp_path / "again" / "binned.parquet"))


def test_pixel_only_submission_is_scored_on_pixel_hits(trackml_store, trackml_event, tmp_path):
    hits = pd.concat([trackml_event.hits.assign(event_id=e) for e in (1, 2, 3)])
    pixel = hits[hits.volume_id.isin([7, 8, 9])]
    write_submission(tmp_path / "pix.csv", _truth_submission(pixel))
    m = score_submission(trackml_store, tmp_path / "pix.csv")
    assert m["pixel_only"] and m["trackml_score"] is None
    assert m["trackml_score_pixel"] == pytest.approx(1.0) and m["fit_accuracy"] == 1.0 and m["dm_efficiency"] == 1.0
    assert m["headline"] == "trackml_score"
    assert m["n_hits"] == len(pixel)
    with pytest.raises(DataError, match="missing from the submission") as err:
        score_submission(trackml_store, tmp_path / "pix.csv", pixel_only=False)
    assert str(tmp_path / "pix.csv") in str(err.value)


def test_missing_event_and_unknown_event_are_errors(trackml_store, trackml_event, tmp_path):
    sub = _truth_submission(trackml_event.hits)
    write_submission(tmp_path / "one.csv", sub)
    with pytest.raises(DataError) as err:
        score_submission(trackml_store, tmp_path / "one.csv")
    assert err.value.event == 2 and err.value.column == "hit_id"
    write_submission(tmp_path / "extra.csv", pd.concat([sub.assign(event_id=e) for e in (1, 2, 3, 9)]))
    with pytest.raises(DataError) as err:
        score_submission(trackml_store, tmp_path / "extra.csv")
    assert err.value.event == 9 and err.value.column == "event_id"


def redvid_event(rng, eid):
    """A REDVID-like event: strip-disk volume codes, unit weights, particles without momentum."""
    n_tracks = 8
    nh = rng.integers(3, 10, n_tracks)
    pid = np.repeat(np.arange(1, n_tracks + 1), nh)
    layer = np.concatenate([np.arange(k) for k in nh])
    hits = pd.DataFrame({"hit_id": np.arange(len(pid)), "x": rng.normal(size=len(pid)), "y": rng.normal(size=len(pid)),
                         "z": rng.normal(size=len(pid)), "volume_id": np.where(layer < 5, 3, 4), "layer_id": layer,
                         "module_id": 0, "particle_id": pid, "weight": 1.0})
    zeros = np.zeros(n_tracks)
    particles = pd.DataFrame({"particle_id": np.arange(1, n_tracks + 1), "vx": zeros, "vy": zeros, "vz": zeros,
                              "px": zeros, "py": zeros, "pz": zeros, "q": 0, "nhits": nh})
    return normalise_event(hits, particles, event_id=eid)


def test_redvid_like_store_has_no_kinematic_selection(tmp_path):
    rng = np.random.default_rng(4)
    events = [redvid_event(rng, e) for e in range(4)]
    write_store(tmp_path / "redvid", events)
    hits = pd.concat([e.hits for e in events])
    sub = _truth_submission(hits)
    sub.loc[sub.index[:5], "track_id"] = 99  # a few hits of event 0 stolen into one track
    write_submission(tmp_path / "sub.csv", sub)
    m = evaluate(tmp_path / "redvid", tmp_path / "sub.csv", tmp_path / "out", bootstrap=50)
    assert m["selection"] == "none (REDVID: no momentum)" and m["pt_min"] is None and m["max_eta"] is None
    assert m["headline"] == "fit_accuracy"  # the tables' metric for this dataset, whatever its name
    assert "trackml_score_pixel" not in m
    assert m["fit_accuracy"] == pytest.approx(m["trackml_score"]) and m["fit_accuracy"] < 1.0
    # Every track (>= 3 hits on >= 3 layers) is selected although its momentum is 0.
    assert m["n_selected_particles"] == 32
    binned = pd.read_parquet(tmp_path / "out" / "binned.parquet")
    assert set(binned.variable) == {"all"}


def test_cli_score_real_event_json(trackml_dir, trackml_event, tmp_path, capsys):
    write_submission(tmp_path / "sub.csv", _truth_submission(trackml_event.hits))
    assert main(["score", "--truth", str(trackml_dir), "--submission", str(tmp_path / "sub.csv"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["trackml_score"] == 1.0 and out["trackml_score_pixel"] == pytest.approx(1.0)
    assert HEADLINE <= set(out) and out["dm_efficiency"] == 1.0 and out["fake_rate"] == 0.0
    # The same keys as metrics.json (which adds the bootstrap settings).
    m = evaluate(trackml_dir, tmp_path / "sub.csv", tmp_path / "eval", bootstrap=10)
    assert set(m) - set(out) == {"bootstrap", "seed", "ci", "fig4_pt_min", "fig4_max_eta", "fig4_min_track_hits",
                                 "fig4_selection"}
    assert out["truth"] is True and m["truth"] is True  # stores without truth say false (tests/io/test_truthless)
    assert main(["score", "--truth", str(trackml_dir), "--submission", str(tmp_path / "sub.csv"), "--per-event"]) == 0
    text = capsys.readouterr().out
    assert "trackml_score" in text and "event_id" in text


def test_cli_score_bad_submission_exits_2(trackml_dir, trackml_event, tmp_path, capsys):
    write_submission(tmp_path / "sub.csv", _truth_submission(trackml_event.hits).iloc[10:])
    assert main(["score", "--truth", str(trackml_dir), "--submission", str(tmp_path / "sub.csv")]) == 2
    assert "missing from the submission" in capsys.readouterr().err


def test_workflow_evaluate_with_truth_is_evaluate(trackml_dir, trackml_event, tmp_path):
    """evaluate_for_workflow on a store with truth writes exactly what evaluate writes."""
    from trackpipe.evaluate import evaluate_for_workflow
    from trackpipe.io.ingest import ingest

    ingest("trackml", trackml_dir, tmp_path / "store")
    write_submission(tmp_path / "sub.csv", _truth_submission(trackml_event.hits))
    a = evaluate(tmp_path / "store", tmp_path / "sub.csv", tmp_path / "a", bootstrap=10)
    b = evaluate_for_workflow(tmp_path / "store", tmp_path / "sub.csv", tmp_path / "b", bootstrap=10)
    assert a == b and a["truth"] is True and a["trackml_score"] == 1.0
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "a" / "binned.parquet"),
                                  pd.read_parquet(tmp_path / "b" / "binned.parquet"))


def test_timing_metrics_carry_the_attention_actually_used():
    from trackpipe.evaluate import timing_metrics

    fallback = "sdpa fp32 (fallback from flash: it needs CUDA with fp16/bf16, ran on cpu)"
    timing = pd.DataFrame({"event_id": [1, 2], "n_hits": 10, "device_ms": [1.0, 2.0], "host_cpu_ms": [3.0, 4.0],
                           "wall_ms": [5.0, 6.0], "device": "cpu", "attention": fallback})
    m = timing_metrics(timing, warmup=0)
    assert m["attention"] == fallback and m["device"] == "cpu"
    assert "attention" not in timing_metrics(timing.drop(columns="attention"), warmup=0)   # older files
