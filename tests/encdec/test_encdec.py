"""EncDec: set-attention invariance, teacher-forcing tracks, hit claiming, seeds, decoding, train/predict."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from trackpipe.models.encdec import EncDec, InducedSetAttention
from trackpipe.tracking.teacher import teacher_tracks
from trackpipe.tracking.encdec_decode import _claim, decode_event
from trackpipe.tracking.seeding import geometric_seeds, truth_seeds

torch.set_num_threads(1)


def test_isab_permutation_equivariant_and_ignores_padding():
    torch.manual_seed(0)
    block = InducedSetAttention(16, 2, 4, 32, 0.0).eval()
    x = torch.randn(1, 9, 16)
    perm = torch.randperm(9)
    valid = torch.ones(1, 9, dtype=torch.bool)
    out = block(x, valid)
    torch.testing.assert_close(block(x[:, perm], valid), out[:, perm], atol=1e-5, rtol=1e-5)
    padded = torch.cat([x, 100 * torch.randn(1, 3, 16)], dim=1)
    out_pad = block(padded, torch.cat([valid, torch.zeros(1, 3, dtype=torch.bool)], dim=1))
    torch.testing.assert_close(out_pad[:, :9], out, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("training", [False, True])
def test_track_decoder_matches_torch_decoder_with_one_memory_copy_per_track(training):
    """The grouped cross-attention decoder computes what nn.TransformerDecoder(norm_first) computes on
    memory[track_event] with the padded hits masked, forward and backward, with the same weights."""
    from torch import nn

    from trackpipe.models.encdec import TrackDecoder

    torch.manual_seed(0)
    d, heads, d_ff, n_layers = 16, 4, 24, 2
    ours = TrackDecoder(d, heads, d_ff, 0.0, n_layers)
    layer = nn.TransformerDecoderLayer(d, heads, d_ff, 0.0, batch_first=True, norm_first=True)
    reference = nn.TransformerDecoder(layer, n_layers, norm=nn.LayerNorm(d))
    reference.load_state_dict(ours.state_dict())  # same parameter names, so the weights carry over
    ours.train(training), reference.train(training)
    B, N, T, L = 3, 11, 7, 5
    memory = torch.randn(B, N, d, requires_grad=True)
    valid = torch.ones(B, N, dtype=torch.bool)
    valid[1, 6:] = False  # padded hits of a smaller event
    valid[2, 9:] = False
    track_event = torch.tensor([2, 0, 1, 1, 2, 0, 1])  # unsorted, uneven tracks per event
    x = torch.randn(T, L, d, requires_grad=True)
    out = ours(x, memory, valid, track_event)
    causal = nn.Transformer.generate_square_subsequent_mask(L)
    ref = reference(x, memory[track_event], tgt_mask=causal, tgt_is_causal=True,
                    memory_key_padding_mask=~valid[track_event])
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    grad = torch.randn_like(out)
    g_ours = torch.autograd.grad(out, (x, memory, *ours.parameters()), grad)
    g_ref = torch.autograd.grad(ref, (x, memory, *reference.parameters()), grad)
    for a, b in zip(g_ours, g_ref):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    # Padded hits take no part: changing them leaves every output unchanged.
    noisy = memory.detach().clone()
    noisy[~valid] = 1e3
    torch.testing.assert_close(ours(x, noisy, valid, track_event), out, atol=1e-5, rtol=1e-5)


def test_teacher_tracks_matches_reference():
    rng = np.random.default_rng(1)
    ev = rng.integers(0, 3, 60)
    pid = rng.integers(0, 6, 60)
    dist = rng.random(60)
    e, seq, lengths = teacher_tracks(ev, pid, dist, max_length=4)
    expected = []
    for b in range(3):
        for p in range(1, 6):
            idx = np.flatnonzero((ev == b) & (pid == p))
            if len(idx) >= 3:
                expected.append((b, list(idx[np.argsort(dist[idx])][:4])))
    assert [(int(a), [int(h) for h in s[s >= 0]]) for a, s in zip(e, seq)] == expected
    assert list(lengths) == [len(s) for _, s in expected]


def test_claim_gives_each_hit_to_the_nearest_prediction():
    cand = np.array([[0, 1, 2], [0, 2, 1], [3, -1, -1], [0, -1, -1]])
    dist = np.array([[1.0, 2, 3], [0.5, 1, 4], [1, np.inf, np.inf], [2.0, np.inf, np.inf]])
    used = np.zeros(4, bool)
    used[3] = True
    choice = _claim(cand, dist, used)
    assert list(choice) == [1, 0, -1, -1]  # track 1 is nearer to hit 0; hit 3 was used already
    assert used[[0, 1]].all() and not used[2]


def _helices(n_tracks=6, seed=0):
    rng = np.random.default_rng(seed)
    radii = np.array([75, 150, 225, 300, 375, 450.0])
    rows = []
    for t in range(n_tracks):
        phi0, R, s, cot = rng.uniform(-np.pi, np.pi), rng.uniform(800, 3000), rng.choice([-1, 1]), rng.uniform(-1, 1)
        ang = 2 * np.arcsin(radii / (2 * R))  # turning angle at radius r for a circle through the origin
        x = R * (np.cos(phi0) - np.cos(phi0 + s * ang)) * -s
        y = R * (np.sin(phi0) - np.sin(phi0 + s * ang)) * -s
        rows.append(pd.DataFrame({"x": x, "y": y, "z": cot * radii, "particle_id": t + 1,
                                  "volume_id": 2, "layer_id": np.arange(6)}))
    return pd.concat(rows, ignore_index=True)


def test_geometric_seeds_find_the_innermost_triplets():
    hits = _helices()
    xyz = hits[["x", "y", "z"]].to_numpy()
    seeds = geometric_seeds(xyz, hits.layer_id.to_numpy())
    truth = truth_seeds(hits.particle_id.to_numpy(), xyz)
    assert {tuple(s) for s in seeds} == {tuple(s) for s in truth}


def test_decode_without_model_knowledge_is_batched_and_stops():
    class Oracle(EncDec):
        """Decoder replaced by 'next hit = the seed's track continued' via a fixed lookup (tests snapping)."""

        def decode(self, seq_x, memory, memory_valid=None, track_event=None):
            mm = self.to_mm(seq_x)
            step = mm[:, -1:] - mm[:, -2:-1]
            return (mm + step - self.input_mean) / self.input_std, torch.full(seq_x.shape[:2], -5.0)

    m = Oracle(input_mean=[0, 0, 0], input_std=[1, 1, 1], d_model=8, n_heads=2, d_ff=8, n_inducing=2,
               max_track_length=8).eval()
    # Two straight tracks of 6 equally spaced hits each.
    t = np.arange(1, 7)[:, None] * 50.0
    xyz = np.concatenate([t * [1, 0, 0.2], t * [0, 1, -0.3]])
    seeds = np.array([[0, 1, 2], [6, 7, 8]])
    labels, info = decode_event(m, xyz, seeds, snap_distance=10.0)
    assert list(labels) == [0] * 6 + [1] * 6
    assert info["steps"] == 4  # 3 hits added, then nothing within 10 mm ends both tracks in one call


def test_train_and_predict_cli(tmp_path):
    from trackpipe.cli import main
    from trackpipe.io.store import write_store
    from trackpipe.io.submission import read_submission
    from trackpipe.sim.redvid import simulate_redvid

    write_store(tmp_path / "d", simulate_redvid({"n_tracks": [3, 5]}, range(6), 3))
    import json

    (tmp_path / "c.json").write_text(json.dumps({"architecture": {"d_model": 16, "n_heads": 2, "d_ff": 16,
                                                                  "n_inducing": 4}, "training": {"batch_size": 2}}))
    assert main(["train", "--data", str(tmp_path / "d"), "--model", "encdec", "--config", str(tmp_path / "c.json"),
                 "--epochs", "1", "--threads", "1", "--out", str(tmp_path / "m")]) == 0
    hist = pd.read_csv(tmp_path / "m" / "history.csv")
    assert {"train_next_hit", "val_next_hit", "val_stop"} <= set(hist.columns)
    assert main(["predict", "--model", str(tmp_path / "m"), "--data", str(tmp_path / "d"), "--out",
                 str(tmp_path / "s.csv"), "--timing", str(tmp_path / "t.csv"), "--threads", "1"]) == 0
    sub = read_submission(tmp_path / "s.csv")
    timing = pd.read_csv(tmp_path / "t.csv")
    assert len(timing) == 6 and (timing.wall_ms >= timing.device_ms).all()
    assert sub.groupby("event_id").hit_id.nunique().sum() == len(sub)
