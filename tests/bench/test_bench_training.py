"""The training-step table: its arithmetic, the FLOP count of the encoder families against a hand count,
a real (tiny) step that trains, and `trackpipe bench` carrying the rows into bench.json."""

import json

import numpy as np
import pytest
import torch

from trackpipe.bench.flops import model_flops
from trackpipe.bench.training import (TRAIN_COLUMNS, build_step, format_training_table, run_training_bench,
                                      step_row, training_config, training_data)
from trackpipe.cli import bench as bench_cli
from trackpipe.cli import main
from trackpipe.errors import ConfigError
from trackpipe.models.backbone import Encoder
from trackpipe.models.heads import ClassificationHead, EncoderModel, JointModel, RegressionHead

TINY = {"models": ["enccla", "jm"], "d_models": [16], "batch_events": [2], "sources": 1, "reductions": 2,
        "n_tracks": [3, 5], "repeats": 2, "warmup": 0}


def test_step_row_arithmetic():
    row = step_row("enccla", 64, [3, 5], [100.0, 300.0, 200.0], ref_gflops=50.0, flops_forward=10**9)
    assert tuple(row) == TRAIN_COLUMNS
    assert row["hits/step"] == 8 and row["padded/step"] == 10 and row["ms_median"] == 200.0
    assert row["hits/s"] == pytest.approx(8 / 0.2)           # hits per step / median seconds
    assert row["gflop/step"] == pytest.approx(3.0)           # forward + backward = 3 x forward
    assert row["gflops"] == pytest.approx(3.0 / 0.2)
    assert row["frac_peak"] == pytest.approx(15.0 / 50.0)    # achieved / matmul of the same rounds


def _tiny_encoder(input_dim, n_layers=1):
    return Encoder(input_dim, d_model=8, n_heads=2, d_ff=12, n_layers=n_layers, dropout=0.0)


def test_model_flops_match_a_hand_count():
    n = 4
    # per encoder layer at d 8, ff 12: qkv 2·n·8·24 + out 2·n·8·8 + attention 2·2·n²·8 + ff 2·2·n·8·12
    layer = 2 * n * 8 * 24 + 2 * n * 8 * 8 + 2 * 2 * n * n * 8 + 2 * 2 * n * 8 * 12
    assert layer == 4096
    cla = EncoderModel(_tiny_encoder(3), ClassificationHead(8, 5))
    assert model_flops(cla, n) == 2 * n * 3 * 8 + layer + 2 * n * 8 * 5
    reg = EncoderModel(_tiny_encoder(3, n_layers=2), RegressionHead(8, 3, n_latent=2))
    jm = JointModel(reg, EncoderModel(_tiny_encoder(3 + 5), ClassificationHead(8, 5)))
    # regressor: embedding, 2 layers, 5 outputs; classifier: embedding of 3 + 5 inputs, 1 layer, 5 classes
    assert model_flops(jm, n) == (2 * n * 3 * 8 + 2 * layer + 2 * n * 8 * 5) + (2 * n * 8 * 8 + layer + 2 * n * 8 * 5)
    with pytest.raises(ConfigError, match="no FLOP count"):
        model_flops(torch.nn.Linear(2, 2), n)


@pytest.fixture(scope="module")
def tiny_data():
    return training_data(training_config(TINY))


def test_step_trains_on_real_events(tiny_data):
    from trackpipe.models.registry import build_model, resolve_config

    data, prep = tiny_data
    assert len(data) == 2 and prep.n_classes == 5401  # fitted on the unreduced source: the full joint head
    torch.manual_seed(0)
    model = build_model(resolve_config("enccla", {"architecture": {"d_model": 16, "d_ff": 32, "dropout": 0.0}}), prep)
    step = build_step(model, data, np.arange(2), lr=3e-3)
    losses = [step() for _ in range(6)]
    assert losses[-1] < losses[0]  # the step runs backward and the optimizer: the same batch gets easier


def test_run_training_bench_rows(tiny_data):
    cfg = training_config(TINY)
    rows = run_training_bench(cfg)
    data, _ = tiny_data
    assert [(r["model"], r["d_model"], r["batch_events"]) for r in rows] == [("enccla", 16, 2), ("jm", 16, 2)]
    for r in rows:
        assert r["hits/step"] == int(data.lengths.sum())
        assert r["hits/s"] == pytest.approx(r["hits/step"] / (r["ms_median"] / 1e3))
        assert r["frac_peak"] == pytest.approx(r["gflops"] / r["ref_gflops"])
    assert rows[1]["gflop/step"] > rows[0]["gflop/step"]  # JM: two 3-layer encoders + regression, more work
    assert "enccla" in format_training_table(rows)


def test_config_errors():
    with pytest.raises(ConfigError, match="not encoder families"):
        training_config({"models": ["unet"]})
    with pytest.raises(ConfigError, match="smaller than the largest batch"):
        training_config({"sources": 1, "reductions": 2, "batch_events": [4]})
    with pytest.raises(ConfigError, match="unknown key bench.training.depth"):
        training_config({"depth": 3})


def test_cli_training_rows_in_json(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(bench_cli.TRAINING, "full", {k: v for k, v in TINY.items() if k != "models"})
    out = tmp_path / "bench"
    rc = main(["bench", "--models", "helix-dbscan,jm", "--max-tracks", "10", "--repeats", "1", "--events", "1",
               "--no-sweep", "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "training step (" in printed
    doc = json.loads((out / "bench.json").read_text())
    assert [r["model"] for r in doc["training"]] == ["jm"] and doc["training_config"]["models"] == ["jm"]
    assert {r["model"] for r in doc["rows"]} == {"helix-dbscan"}  # jm has no inference runner
    # --models without an encoder family: no training rows
    assert main(["bench", "--models", "helix-dbscan", "--max-tracks", "10", "--repeats", "1", "--events", "1",
                 "--no-sweep", "--out", str(out)]) == 0
    assert json.loads((out / "bench.json").read_text())["training"] == []
