"""`contrastive` and the Part-2-style cluster-attention classifier train through the one loop and predict
through `predict`; locality tables are cached per event and reused."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest

from contrastive_helpers import TINY_CONTRASTIVE, tiny_events
from trackpipe.io.store import EventStore, write_store
from trackpipe.io.submission import read_submission
from trackpipe.predict import predict
from trackpipe.train.loop import train

# wide clusters, so that each locality cluster holds several particles (the loss has negatives)
WIDE = {"algorithm": "dbscan", "clustering": {"barrel": {"eps": 6.0, "v_scale": 0.05}, "endcap": {"eps": 40.0}}}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("contrastive") / "store"
    write_store(path, tiny_events(5, seed=1))
    return path


def contrastive_config():
    cfg = copy.deepcopy(TINY_CONTRASTIVE)
    cfg["architecture"]["attention_options"] = {"locality": WIDE}
    return cfg


def assert_disjoint_submission(sub: pd.DataFrame, store_path):
    hits = EventStore(store_path).hits(columns=["event_id", "hit_id"])
    assert len(sub) == len(hits)
    assert not sub.duplicated(["event_id", "hit_id"]).any()
    pd.testing.assert_frame_equal(sub[["event_id", "hit_id"]].sort_values(["event_id", "hit_id"]).reset_index(drop=True),
                                  hits.sort_values(["event_id", "hit_id"]).reset_index(drop=True), check_dtype=False)


def test_contrastive_trains_caches_tables_and_predicts(store, tmp_path):
    from trackpipe.locality.pipeline import event_blocks

    out = tmp_path / "model"
    result = train("contrastive", store, out, config=contrastive_config(), epochs=3, seed=0, threads=1)
    assert result.status == "completed"
    hist = result.history
    assert np.isfinite(hist.train_loss).all() and hist.train_loss.iloc[-1] < hist.train_loss.iloc[0]
    cached = sorted((out / "locality-cache").glob("*.blocks.npz"))
    assert len(cached) == 5  # one table file per event (4 training + 1 validation)
    ev = EventStore(store).read_event(1)
    _, loaded = event_blocks(1, ev.hits[["hit_id", "x", "y", "z"]], WIDE["algorithm"], WIDE["clustering"],
                             None, None, out / "locality-cache")
    assert loaded  # the same event and parameters hit the cache
    assert_threshold_chosen_on_validation_dm(out, store)
    summary = predict(out, store, tmp_path / "sub.csv", timing=tmp_path / "timing.csv", threads=1, warmup=1)
    assert summary["n_events"] == 5
    assert_disjoint_submission(read_submission(tmp_path / "sub.csv"), store)


@pytest.mark.parametrize("edge_loss", [0.0, 0.5])
def test_contrastive_with_a_geometric_pair_bias_trains_learns_the_bias_and_predicts(store, tmp_path, edge_loss):
    import torch

    from trackpipe.predict import load_model
    from trackpipe.train.data import collate
    from trackpipe.train.locality import load_arrays, locality_settings

    cfg = contrastive_config()
    cfg["contrastive"]["pair_bias"] = {"hidden": 8, "edge_loss": edge_loss}
    out = tmp_path / "model"
    result = train("contrastive", store, out, config=cfg, epochs=2, seed=0, threads=1)
    assert result.status == "completed" and np.isfinite(result.history.train_loss).all()
    model, model_cfg, prep = load_model(out, torch.device("cpu"))
    # the last layer starts at zero: after training it is not, so the bias took part in the optimisation
    assert float(model.pair_bias.to_bias.weight.detach().abs().sum()) > 0
    assert np.isfinite(result.history.val_con_loss).all()
    # on one event: the optimised loss is the InfoNCE plus edge_loss times the pair loss, both logged apart
    data = load_arrays(EventStore(store), prep, [1], locality_settings(model_cfg))
    with torch.no_grad():
        batch = collate(data, [0])
        loss, stats = model.loss(model(batch), batch)
    con = stats["con_loss__num"] / stats["con_loss__den"]
    if edge_loss:
        assert model.pair_bias.to_edge is not None and np.isfinite(result.history.val_edge_loss).all()
        edge = stats["edge_loss__num"] / stats["edge_loss__den"]
        assert edge > 0 and float(loss) == pytest.approx(con + edge_loss * edge, rel=1e-5)
    else:
        assert model.pair_bias.to_edge is None and "val_edge_loss" not in result.history
        assert float(loss) == pytest.approx(con, rel=1e-6) and "edge_loss__num" not in stats
    summary = predict(out, store, tmp_path / "sub.csv", threads=1)
    assert summary["n_events"] == 5
    assert_disjoint_submission(read_submission(tmp_path / "sub.csv"), store)


@pytest.mark.parametrize("section,message", [
    ({"contrastive": {"pair_bias": {"width": 8}}}, "pair_bias.width"),
    ({"contrastive": {"pair_bias": {"hidden": 8}}, "targets": {"inputs": ["r", "phi", "z"]}}, "lacks \\['x', 'y'\\]"),
    ({"contrastive": {"pair_bias": {"edge_loss": -1.0}}}, "pair_bias.edge_loss must be >= 0"),
])
def test_bad_pair_bias_sections_fail_clearly(store, tmp_path, section, message):
    from trackpipe.errors import ConfigError

    cfg = contrastive_config()
    for key, value in section.items():
        cfg[key] = {**cfg.get(key, {}), **value}
    with pytest.raises(ConfigError, match=message):
        train("contrastive", store, tmp_path / "model", config=cfg, epochs=1, seed=0, threads=1)


def assert_threshold_chosen_on_validation_dm(model_dir, store_path):
    """preprocessing.json: the threshold with the best DM efficiency at pT > 0.9 GeV of the validation event,
    whose particle count is the headline metric's own (metrics.efficiency on the store's tables)."""
    import json

    from trackpipe.metrics.efficiency import match_tables
    from trackpipe.train.loop import split_events

    clustering = json.loads((model_dir / "preprocessing.json").read_text())["clustering"]
    assert clustering["objective"] == "dm_efficiency_pt0.9" and clustering["selection_events"] == 1
    store = EventStore(store_path)
    _, (val_id,) = split_events(store.event_ids, 0.1, 0)
    ev = store.read_event(val_id)
    ptab, _ = match_tables(ev.hits, ev.particles, ev.hits.assign(track_id=np.arange(len(ev.hits)))[["event_id", "hit_id", "track_id"]])
    rows = clustering["grid"]
    # every (helix test off / on, max hits per layer, threshold) combination of the grid was scored; the
    # helix tolerance is calibrated on the validation truth (both values > 0)
    tolerance = rows[-1]["helix_tolerance"]
    assert tolerance is not None and min(tolerance) > 0
    assert [(r["helix_tolerance"], r["max_hits_per_layer"], r["threshold"]) for r in rows] == [
        (tol, limit, t) for tol in (None, tolerance) for limit in (1, 2) for t in TINY_CONTRASTIVE["tracking"]["thresholds"]]
    assert all(r["n_selected_particles"] == int(ptab.selected.sum()) > 0 for r in rows)
    best = max(r["dm_efficiency"] for r in rows)
    (chosen,) = [r for r in rows if r["chosen"]]
    assert (chosen["threshold"], chosen["max_hits_per_layer"], chosen["helix_tolerance"]) == (
        clustering["threshold"], clustering["max_hits_per_layer"], clustering["helix_tolerance"])
    assert chosen["dm_efficiency"] == best and all(0 <= r["trackml_score"] <= 1 for r in rows)


def test_reselect_reruns_track_formation_selection_of_a_trained_model(store, tmp_path, capsys):
    """A model whose selection never tried the helix test gets it from `trackpipe train --reselect`,
    without training: the grid gains the helix rows, the weights stay, and prediction uses the result."""
    import torch

    from trackpipe.cli import main
    from trackpipe.train.loop import CHECKPOINT

    cfg = contrastive_config()
    cfg["tracking"]["helix_quantile"] = None
    out = tmp_path / "model"
    train("contrastive", store, out, config=cfg, epochs=1, seed=0, threads=1)
    before = json.loads((out / "preprocessing.json").read_text())["clustering"]
    assert all(r["helix_tolerance"] is None for r in before["grid"])
    weights = torch.load(out / CHECKPOINT, weights_only=False)["best_model"]
    config = json.loads((out / "config.json").read_text())
    config["tracking"]["helix_quantile"] = 0.99  # as if the recorded config predated the key's default
    (out / "config.json").write_text(json.dumps(config))
    (tmp_path / "tracking.json").write_text(json.dumps({"tracking": {"k": 7}}))
    assert main(["train", "--reselect", "--model", "contrastive", "--data", str(store), "--out", str(out),
                 "--threads", "1", "--config", str(tmp_path / "tracking.json")]) == 0
    after = json.loads((out / "preprocessing.json").read_text())["clustering"]
    assert after["k"] == 7  # the given tracking key replaced the recorded one
    assert "selection rerun" in capsys.readouterr().out
    tolerances = {None if r["helix_tolerance"] is None else tuple(r["helix_tolerance"]) for r in after["grid"]}
    assert None in tolerances and len(tolerances) == 2
    (chosen,) = [r for r in after["grid"] if r["chosen"]]
    assert after["helix_tolerance"] == chosen["helix_tolerance"] and after["threshold"] == chosen["threshold"]
    again = torch.load(out / CHECKPOINT, weights_only=False)["best_model"]
    assert all(torch.equal(weights[k], again[k]) for k in weights)  # nothing was trained
    assert predict(out, store, tmp_path / "sub.csv", threads=1)["n_events"] == 5
    # prediction with the helix test on (the calibrated tolerance of the grid) reads the hits' x, y, z
    prep = json.loads((out / "preprocessing.json").read_text())
    prep["clustering"].update(helix_tolerance=sorted(tolerances - {None})[0], max_hits_per_layer=1)
    (out / "preprocessing.json").write_text(json.dumps(prep))
    assert predict(out, store, tmp_path / "helix.csv", threads=1)["n_events"] == 5
    assert_disjoint_submission(read_submission(tmp_path / "helix.csv"), store)
    assert main(["train", "--reselect", "--model", "enccla", "--data", str(store), "--out", str(out)]) != 0
    assert "holds a contrastive model, not enccla" in capsys.readouterr().err
    (tmp_path / "arch.json").write_text(json.dumps({"architecture": {"d_model": 8}}))
    assert main(["train", "--reselect", "--model", "contrastive", "--data", str(store), "--out", str(out),
                 "--config", str(tmp_path / "arch.json")]) != 0
    assert "only a tracking section" in capsys.readouterr().err


def test_part2_classifier_with_cluster_attention_trains_and_predicts(store, tmp_path):
    cfg = {"architecture": {"d_model": 16, "n_heads": 2, "d_ff": 32, "n_layers": 2, "attention": "cluster-blocked",
                            "attention_options": {"locality": WIDE}},
           "targets": {"bins": {"phi": 4, "theta": 3, "p": 2, "q": 2}},
           "training": {"batch_size": 2, "early_stopping": 0}}
    result = train("enccla", store, tmp_path / "cla", config=cfg, epochs=1, seed=0, threads=1)
    assert result.status == "completed" and np.isfinite(result.history.train_loss).all()
    predict(tmp_path / "cla", store, tmp_path / "cla.csv", threads=1, warmup=0)
    assert_disjoint_submission(read_submission(tmp_path / "cla.csv"), store)
