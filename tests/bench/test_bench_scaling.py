"""The scaling study end to end on tiny events, the cluster-blocked backend, and `trackpipe bench`."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from trackpipe.bench.flops import encoder_flops
from trackpipe.bench.scaling import locality_blocks, run_scaling, scaling_config, scaling_events
from trackpipe.cli import main
from trackpipe.locality.blocks import build_blocks
from trackpipe.models.attention import AttentionMask, build_attention
from trackpipe.plots.scaling import SCALING_COLUMNS

TINY_ARCH = {"d_model": 8, "n_heads": 2, "d_ff": 16, "n_layers": 1}


@pytest.fixture(scope="module")
def tiny_cfg():
    return scaling_config({"n_tracks": [4, 12], "events": 1, "repeats": 1, "full_events": False,
                           "architecture": TINY_ARCH, "gpu": False,
                           "models": ["helix-dbscan", "enccla", "encoder-dense", "encoder-blocked", "locality"]})


@pytest.fixture(scope="module")
def tiny_points(tiny_cfg):
    return scaling_events(tiny_cfg)


def test_events_have_the_requested_tracks(tiny_points):
    assert [p.label for p in tiny_points] == ["4 tracks", "12 tracks"]
    assert [p.n_tracks for p in tiny_points] == [4.0, 12.0]
    ev = tiny_points[1].events[0]
    assert ev.hits.particle_id[ev.hits.particle_id != 0].nunique() == 12
    assert tiny_points[0].n_hits < tiny_points[1].n_hits


def test_cluster_backend_equals_masked_dense_attention():
    torch.manual_seed(1)
    n = 9
    cluster = np.array([0, 1, 0, 2, 1, 0, 2, 2, 1])
    blocks = build_blocks(np.arange(n), cluster, n)
    q, k, v = (torch.randn(1, 2, n, 4) for _ in range(3))
    mask = AttentionMask(torch.ones(1, n, dtype=torch.bool), extra={"blocks": blocks})
    got = build_attention("cluster-blocked")(q, k, v, mask)
    same = torch.as_tensor(cluster[:, None] == cluster[None, :])
    assert torch.allclose(got, F.scaled_dot_product_attention(q, k, v, attn_mask=same), atol=1e-5)


def test_run_scaling_rows(tiny_cfg, tiny_points):
    rows = run_scaling(tiny_cfg, tiny_points)
    df = pd.DataFrame(rows)
    assert len(df) == 5 * 2 and set(df.device) == {"cpu"}
    assert (df.ms_median > 0).all() and (df.ms_p90 >= df.ms_median).all() and (df.peak_mb >= 0).all()
    base = df[df.model == "helix-dbscan"]
    assert base.score.between(0, 1).all() and df[df.model != "helix-dbscan"].score.isna().all()
    # FLOPs of the dense encoder row = the analytic count for that event
    n = int(tiny_points[1].n_hits)
    dense = df[(df.model == "encoder-dense") & (df["size"] == "12 tracks")].iloc[0]
    assert dense.gflop * 1e9 == pytest.approx(encoder_flops(n, TINY_ARCH, 3)["total"])
    blocks = locality_blocks(tiny_points[1].events[0], tiny_cfg["locality"])
    blocked = df[(df.model == "encoder-blocked") & (df["size"] == "12 tracks")].iloc[0]
    assert blocked.gflop * 1e9 == pytest.approx(
        encoder_flops(n, TINY_ARCH, 3, cluster_sizes=np.bincount(blocks.token_cluster))["total"])
    assert blocked.gflops > 0 and blocked.ref_gflops > 0
    # rates only where the timed call is the forward (not for the locality tracker or the baseline)
    assert df[df.model.isin(["locality", "helix-dbscan"])].gflops.isna().all()


def test_cli_writes_scaling_csv_and_json(tmp_path, capsys):
    out = tmp_path / "bench"
    rc = main(["bench", "--models", "helix-dbscan,encoder-blocked", "--max-tracks", "10", "--repeats", "1",
               "--events", "1", "--no-sweep", "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "helix-dbscan" in printed and "matmul float32" in printed
    csv = pd.read_csv(out / "scaling.csv")
    assert tuple(csv.columns) == SCALING_COLUMNS and list(csv.n_tracks) == [10, 10]
    doc = json.loads((out / "bench.json").read_text())
    assert doc["matmul"]["peak_gflops"] > 0 and len(doc["table"]) == 2 and doc["mode"] == "full"


def test_cli_config_file_and_bad_key(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"n_tracks": [10], "no_such_key": 1}))
    assert main(["bench", "--config", str(bad), "--out", str(tmp_path / "b")]) == 2
    assert "no_such_key" in capsys.readouterr().err
