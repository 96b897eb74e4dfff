"""Inference and the train/predict command line on a tiny synthetic store."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from trackpipe.cli import main
from trackpipe.io.store import EventStore, write_store
from trackpipe.io.submission import read_submission
from trackpipe.predict import predict
from trackpipe.schema import TIMING

from train_helpers import TINY, linear_events


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("pred")
    write_store(root / "train", linear_events(12, seed=5, tracks=(3, 6), noise_fraction=0.05))
    write_store(root / "test", linear_events(4, seed=6, tracks=(3, 6), noise_fraction=0.05, first_id=50))
    return root


def _config_file(root):
    import json

    path = root / "tiny.json"
    path.write_text(json.dumps(TINY))
    return path


@pytest.mark.parametrize("model", ["enccla", "encreg-fa"])
def test_cli_train_then_predict(stores, tmp_path, model, capsys):
    out = tmp_path / model
    assert main(["train", "--data", str(stores / "train"), "--model", model, "--config", str(_config_file(stores)),
                 "--epochs", "1", "--seed", "3", "--threads", "1", "--out", str(out)]) == 0
    args = ["predict", "--model", str(out), "--data", str(stores / "test"), "--out", str(tmp_path / "sub.csv"),
            "--timing", str(tmp_path / "timing.csv"), "--threads", "1", "--warmup", "1"]
    if model == "enccla":
        args += ["--posteriors", str(tmp_path / "post.parquet")]
    assert main(args) == 0
    sub = read_submission(tmp_path / "sub.csv")
    hits = EventStore(stores / "test").hits(columns=["event_id", "hit_id"])
    merged = hits.merge(sub, on=["event_id", "hit_id"], how="outer", indicator=True)
    assert (merged._merge == "both").all() and len(sub) == len(hits)
    timing = pd.read_csv(tmp_path / "timing.csv")
    assert timing.columns.tolist() == TIMING.names + ["attention"] and (timing.device == "cpu").all()
    # The attention actually run: EncReg-FA's flash falls back to sdpa in fp32 on a CPU (= EncReg's).
    expected = "sdpa fp32 (fallback from flash" if model == "encreg-fa" else "sdpa fp32"
    assert timing.attention.str.startswith(expected).all()
    assert timing.event_id.tolist() == EventStore(stores / "test").event_ids.tolist()
    assert (timing.n_hits.to_numpy() == EventStore(stores / "test").index.n_hits.to_numpy()).all()
    assert (timing.device_ms > 0).all() and (timing.wall_ms >= timing.device_ms).all()
    if model == "enccla":
        post = pd.read_parquet(tmp_path / "post.parquet")
        per_hit = post.groupby("hit_id").probability
        assert (per_hit.sum() <= 1 + 1e-5).all() and post.event_id.nunique() == 1
        first = post[post["rank"] == 0].probability.to_numpy()
        assert (first >= post[post["rank"] == 1].probability.to_numpy()).all()


def test_predicted_tracks_follow_the_argmax(stores, tmp_path):
    """Hits with the same predicted class share a track; different classes never do."""
    import torch

    from trackpipe.models.attention import AttentionMask
    from trackpipe.predict import load_model
    from trackpipe.train.loop import train

    train("enccla", stores / "train", tmp_path / "m", config=TINY, epochs=1, seed=0)
    predict(tmp_path / "m", stores / "test", tmp_path / "s.csv", warmup=0)
    model, _, prep = load_model(tmp_path / "m", torch.device("cpu"))
    ev = EventStore(stores / "test").read_event(50)
    x = torch.from_numpy(prep.inputs(ev.hits))[None]
    with torch.no_grad():
        cls = model({"x": x, "mask": AttentionMask(torch.ones(x.shape[:2], dtype=torch.bool))})["logits"][0].argmax(-1)
    sub = read_submission(tmp_path / "s.csv")
    tracks = sub[sub.event_id == 50].set_index("hit_id").track_id.loc[ev.hits.hit_id].to_numpy()
    cls = cls.numpy()
    real = cls != prep.noise_class
    same_cls = cls[real][:, None] == cls[real][None, :]
    same_track = tracks[real][:, None] == tracks[real][None, :]
    assert np.array_equal(same_cls, same_track)
    assert len(np.unique(tracks[~real])) == (~real).sum()


def test_cli_errors_exit_2(stores, tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "missing"), "--model", "enccla", "--out", str(tmp_path / "x")]) == 2
    assert "not an event store" in capsys.readouterr().err
    assert main(["train", "--data", str(stores / "train"), "--model", "nope", "--out", str(tmp_path / "y")]) == 2
    assert main(["predict", "--model", str(tmp_path / "none"), "--data", str(stores / "test"),
                 "--out", str(tmp_path / "s.csv")]) == 2


def _truthless_copy(src, dst):
    """The store's events with the truth columns dropped and no particles (as ingested Kaggle test events)."""
    from trackpipe.io.store import Event, empty_particles
    from trackpipe.schema import TRUTH_COLUMNS

    events = (Event(ev.event_id, ev.hits.drop(columns=list(TRUTH_COLUMNS)), empty_particles())
              for ev in EventStore(src).iter_events())
    return write_store(dst, events)


def test_trained_model_predicts_a_store_without_truth(stores, tmp_path):
    """Prediction reads no truth: the same tracks with or without it; posteriors (true class) refuse."""
    from trackpipe.errors import DataError
    from trackpipe.pipeline import predict_for_workflow
    from trackpipe.train.loop import train

    bare = _truthless_copy(stores / "test", tmp_path / "bare")
    assert EventStore(bare).has_truth is False
    train("enccla", stores / "train", tmp_path / "m", config=TINY, epochs=1, seed=0)
    predict(tmp_path / "m", stores / "test", tmp_path / "with.csv", warmup=0)
    summary = predict_for_workflow(section={"family": "enccla"}, model_dir=tmp_path / "m", data=bare,
                                   out=tmp_path / "wf" / "submission.csv", timing=tmp_path / "wf" / "timing.csv")
    assert summary["n_events"] == len(EventStore(bare))
    pd.testing.assert_frame_equal(read_submission(tmp_path / "with.csv"),
                                  read_submission(tmp_path / "wf" / "submission.csv"))
    # The workflow leaves the posteriors out (nothing to compare with); asked for explicitly, they are refused.
    assert not (tmp_path / "wf" / "posteriors.parquet").exists()
    with pytest.raises(DataError, match="posteriors .* needs truth") as e:
        predict(tmp_path / "m", bare, tmp_path / "s.csv", posteriors=tmp_path / "p.parquet", warmup=0)
    assert e.value.file == str(bare)


@pytest.mark.parametrize("model", ["enccla", "encreg"])
def test_warmup_runs_the_whole_per_event_pipeline(stores, tmp_path, monkeypatch, model):
    """The untimed warm-up runs the post-processing too (HDBSCAN / argmax track building), not only the
    network: with `warmup` w the track builder is called w times on the first event before the N timed
    events, so no timed row holds its first-call cost."""
    import trackpipe.tracking.families as families  # the encoder families' to_tracks hooks
    from trackpipe.train.loop import train

    builder = {"enccla": "tracks_from_classes", "encreg": "tracks_from_regression"}[model]
    calls = []
    original = getattr(families, builder)

    def counting(*args, **kwargs):
        calls.append(len(args[0]))
        return original(*args, **kwargs)

    train(model, stores / "train", tmp_path / "m", config=TINY, epochs=1, seed=0)
    monkeypatch.setattr(families, builder, counting)
    store = EventStore(stores / "test")
    predict(tmp_path / "m", stores / "test", tmp_path / "s.csv", timing=tmp_path / "t.csv", warmup=2)
    first = int(store.index.n_hits.iloc[0])
    assert calls[:2] == [first, first]                       # the warm-up: first event, twice
    assert calls[2:] == store.index.n_hits.tolist()          # then every event once, timed
    assert len(pd.read_csv(tmp_path / "t.csv")) == len(store)


def test_classical_runner_warms_up_the_whole_tracker_and_files_no_gpu_side(stores, tmp_path):
    """tracking.runner: the untimed warm-up is one full tracker call on the first event (its clustering
    included) before the timed ones; a tracker without a network reports no device (GPU side) time."""
    from trackpipe.tracking.runner import run_tracker

    calls = []

    def tracker(event):
        calls.append(int(event.event_id))
        return np.arange(len(event.hits)), {"device_s": None, "host_cpu_s": 0.001}

    store = EventStore(stores / "test")
    run_tracker(stores / "test", tracker, tmp_path / "s.csv", timing_csv=tmp_path / "t.csv", warmup=1)
    ids = store.event_ids.tolist()
    assert calls == [ids[0], *ids]
    timing = pd.read_csv(tmp_path / "t.csv")
    assert timing.event_id.tolist() == ids and timing.device_ms.isna().all()
    assert (timing.host_cpu_ms == 1.0).all()


def test_training_and_prediction_go_through_the_family_hooks(stores, tmp_path, monkeypatch):
    """A family registered with its own `select` and `to_tracks` hooks: training calls `select` once with
    the best weights in eval mode and stores its dict as preprocessing.json's clustering; prediction builds
    every event's tracks with `to_tracks` (no branch on the model kind decides either)."""
    import json

    from trackpipe.models import registry
    from trackpipe.train.loop import train
    from train_helpers import assert_same_weights, weights

    seen = {}

    def select(model, cfg, prep, val_data, device, amp):
        seen["eval"] = not model.training
        seen["weights"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return {"n_val_events": len(val_data), "selection_events": cfg["tracking"]["selection_events"]}

    def to_tracks(outputs, batch, prep):
        n = outputs["logits"].shape[1]
        assert batch["x"].shape[1] == n and prep.clustering["n_val_events"] >= 1
        return np.arange(n, dtype=np.int64)[::-1].copy()  # every hit its own track, ids reversed

    base = registry.MODELS["enccla"]
    spec = registry.ModelSpec("hooked", base.defaults, base.build, select=select, to_tracks=to_tracks)
    monkeypatch.setitem(registry.MODELS, "hooked", spec)
    out = tmp_path / "hooked"
    train("hooked", stores / "train", out, config=TINY, epochs=2, seed=1)
    assert seen["eval"]
    best = weights(out, "best_model")
    assert_same_weights(best, seen["weights"])
    clustering = json.loads((out / "preprocessing.json").read_text())["clustering"]
    assert clustering == {"n_val_events": 1, "selection_events": TINY["tracking"]["selection_events"]}
    predict(out, stores / "test", tmp_path / "s.csv", warmup=0)
    hits = EventStore(stores / "test").hits(columns=["event_id", "hit_id"])  # store (= prediction) hit order
    merged = hits.merge(read_submission(tmp_path / "s.csv"), on=["event_id", "hit_id"], how="left")
    for _, ev in merged.groupby("event_id", sort=False):
        assert ev.track_id.tolist() == list(range(len(ev)))[::-1]


def test_every_registered_family_has_one_way_to_make_tracks():
    """Inference is the family's own `predict` or one forward pass + `to_tracks`, never neither or both."""
    from trackpipe.models.registry import MODELS

    for name, spec in MODELS.items():
        assert (spec.predict is None) != (spec.to_tracks is None), name
        # selected parameters are used by to_tracks or the family's own predict
        assert spec.select is None or spec.to_tracks is not None or spec.predict is not None, name


def test_a_model_directory_written_before_newer_config_keys_still_predicts(tmp_path):
    """config.json of an earlier version lacks keys added since (targets.factor_loss, training.augment,
    training.budget, tracking.noise_probability, tracking.prior_iterations): prediction fills them from the defaults."""
    import json
    import shutil

    import torch

    from trackpipe.predict import load_model
    from trackpipe.sim.redvid import simulate_redvid
    from trackpipe.train.loop import train

    store = write_store(tmp_path / "s", simulate_redvid({"track_types": ["linear"], "n_tracks": [3, 5]}, range(8), 1))
    out = tmp_path / "m"
    train("enccla", store, out, config=TINY, epochs=1, seed=0)
    old = tmp_path / "old"
    shutil.copytree(out, old)
    cfg = json.loads((old / "config.json").read_text())
    for part, key in (("targets", "factor_loss"), ("training", "augment"), ("training", "budget"),
                      ("tracking", "noise_probability"), ("tracking", "prior_iterations")):
        del cfg[part][key]
    (old / "config.json").write_text(json.dumps(cfg))
    model, loaded, _ = load_model(old, torch.device("cpu"))
    assert loaded["targets"]["factor_loss"] == 0.0 and loaded["seed"] == 0
    new_model, _, _ = load_model(out, torch.device("cpu"))
    for (k, a), (_, b) in zip(model.state_dict().items(), new_model.state_dict().items()):
        assert torch.equal(a, b), k
