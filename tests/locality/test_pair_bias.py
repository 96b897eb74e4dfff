"""Geometric pair bias: the features mean what they say, and the biased cluster-blocked attention equals
a dense reference that adds the same per-pair bias inside each cluster."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from trackpipe.errors import ConfigError
from trackpipe.locality.attention import cluster_blocked_attention
from trackpipe.locality.blocks import build_blocks
from trackpipe.locality.pair_bias import PAIR_FEATURES, GeometricPairBias, pair_edge_loss, pair_features
from trackpipe.models.attention import AttentionMask
from trackpipe.models.backbone import Encoder

COL = {name: i for i, name in enumerate(PAIR_FEATURES)}


def _helix_free_track(z0, cot, phi, radii):
    """Hits of a straight track from (0, 0, z0) at azimuth phi with dz/dr = cot."""
    r = np.asarray(radii, float)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z0 + cot * r], axis=1)


def test_vertex_z_of_a_straight_track_is_its_origin():
    hits = torch.tensor(_helix_free_track(-37.0, 0.8, 1.2, [32, 72, 116, 172]))
    f = pair_features(hits)
    off_diagonal = ~torch.eye(4, dtype=torch.bool)
    assert torch.allclose(f[..., COL["z0"]][off_diagonal], torch.full((12,), -0.37, dtype=f.dtype), atol=1e-9)
    # a straight radial track does not bend: dphi and dphi/dr vanish; dr, dz are key minus query
    assert f[..., COL["dphi"]].abs().max() < 1e-9 and f[..., COL["dphi_dr"]].abs().max() < 1e-6
    assert math.isclose(float(f[0, 3, COL["dr"]]), (172 - 32) / 100)
    assert math.isclose(float(f[3, 0, COL["dz"]]), -0.8 * (172 - 32) / 100)
    assert not bool(f[..., COL["same_radius"]][off_diagonal].any()) and bool(f[..., COL["same_radius"]].diagonal().all())


def test_features_are_invariant_under_rotation_about_the_beam_and_wrap_at_pi():
    rng = np.random.default_rng(0)
    pts = np.stack([rng.uniform(30, 170, 12), rng.uniform(-np.pi, np.pi, 12), rng.uniform(-500, 500, 12)], 1)

    def cart(r, phi, z):
        return torch.tensor(np.stack([r * np.cos(phi), r * np.sin(phi), z], 1))

    base = pair_features(cart(pts[:, 0], pts[:, 1], pts[:, 2]))
    for angle in (0.3, np.pi, -2.5):
        turned = pair_features(cart(pts[:, 0], pts[:, 1] + angle, pts[:, 2]))
        assert torch.allclose(base, turned, atol=1e-6)
    # two hits either side of phi = pi are 0.02 rad apart, not 2 pi - 0.02
    f = pair_features(cart(np.array([100.0, 100.0]), np.array([np.pi - 0.01, -np.pi + 0.01]), np.zeros(2)))
    assert math.isclose(float(f[0, 1, COL["dphi"]]), 25 * 0.02, rel_tol=1e-6)
    assert math.isclose(float(f[1, 0, COL["dphi"]]), -25 * 0.02, rel_tol=1e-6)


def test_ratios_are_finite_and_clipped_for_hits_on_one_layer():
    hits = torch.tensor([[50.0, 0.0, 10.0], [50.0, 0.0, 10.0], [0.0, 50.0, -300.0]])
    f = pair_features(hits)
    assert torch.isfinite(f).all()
    assert f[..., [COL["z0"], COL["dphi_dr"], COL["dphi_dz"]]].abs().max() <= 10.0


def _clusters(seed=0, n=150, overlap=40):
    rng = np.random.default_rng(seed)
    idx = np.concatenate([np.arange(n), rng.choice(n, overlap, replace=False)])
    cl = np.concatenate([np.minimum(rng.geometric(1 / 10, n), 30), rng.integers(31, 36, overlap)])
    return build_blocks(idx, cl, n, {"block_size": 16}), idx, cl


def test_biased_cluster_attention_matches_a_per_cluster_dense_reference():
    """Rule: inside each cluster, softmax(q k^T / sqrt(d) + bias(i, j)) v; a hit in several clusters gets
    the mean of its clusters' outputs."""
    blocks, idx, cl = _clusters()
    n, H = blocks.n_hits, 2
    assert len(blocks.bucket_length) >= 2 and int(blocks.hit_multiplicity.max()) > 1
    g = torch.Generator().manual_seed(3)
    coords = torch.randn(n, 3, generator=g, dtype=torch.float64) * torch.tensor([80.0, 80.0, 300.0], dtype=torch.float64)
    q, k, v = (torch.randn(1, H, n, 4, generator=g, dtype=torch.float64) for _ in range(3))
    module = GeometricPairBias(n_layers=1, n_heads=H, hidden=8, head_dim=4, values=True).double()
    torch.nn.init.normal_(module.to_bias.weight, std=0.5, generator=g)
    torch.nn.init.normal_(module.value_weight, std=0.5, generator=g)
    bias, (embedded, weight), _ = module(coords, blocks)
    out = cluster_blocked_attention(q, k, v, blocks, pair_bias=[b[:, 0] for b in bias])
    with_values = cluster_blocked_attention(q, k, v, blocks, pair_bias=[b[:, 0] for b in bias],
                                            pair_values=(embedded, weight[0]))

    ref, ref_values = torch.zeros_like(q), torch.zeros_like(q)
    count = torch.zeros(n, dtype=torch.float64)
    with torch.no_grad():
        for c in np.unique(cl):
            members = torch.as_tensor(idx[cl == c])
            g_pair = module.embed(pair_features(coords[members]))                  # (m, m, hidden)
            pb = module.to_bias(g_pair).permute(2, 0, 1)[None]                     # (1, H, m, m)
            qc, kc, vc = q[:, :, members], k[:, :, members], v[:, :, members]
            ref[:, :, members] += F.scaled_dot_product_attention(qc, kc, vc, attn_mask=pb)
            p = torch.softmax(qc @ kc.transpose(-1, -2) / 2.0 + pb, dim=-1)        # head_dim 4: scale 1/2
            # each query: sum over its keys of p(q, k) times the head's projection of the pair embedding
            pair_term = torch.stack([torch.einsum("qk,qkd->qd", p[0, h], g_pair @ weight[0, h])
                                     for h in range(H)])[None]
            ref_values[:, :, members] += p @ vc + pair_term
            count[members] += 1
    ref /= count[None, None, :, None]
    ref_values /= count[None, None, :, None]
    assert (out - ref).abs().max() <= 1e-10
    assert (with_values - ref_values).abs().max() <= 1e-10
    # and each term matters: without it the outputs differ
    assert (cluster_blocked_attention(q, k, v, blocks) - ref).abs().max() > 1e-3
    assert (with_values - ref).abs().max() > 1e-3


def test_untrained_bias_is_plain_attention_and_gradients_reach_the_mlp():
    blocks, _, _ = _clusters(seed=1)
    n = blocks.n_hits
    g = torch.Generator().manual_seed(0)
    coords = torch.randn(n, 3, generator=g) * 100
    q, k, v = (torch.randn(1, 2, n, 4, generator=g) for _ in range(3))
    module = GeometricPairBias(n_layers=1, n_heads=2, hidden=8, head_dim=4, values=True)
    bias, (embedded, weight), _ = module(coords, blocks)
    out = cluster_blocked_attention(q, k, v, blocks, pair_bias=[b[:, 0] for b in bias],
                                    pair_values=(embedded, weight[0]))
    assert (out - cluster_blocked_attention(q, k, v, blocks)).abs().max() <= 1e-6
    out.pow(2).sum().backward()
    assert module.to_bias.weight.grad.abs().sum() > 0 and module.value_weight.grad.abs().sum() > 0


def test_encoder_refuses_a_pair_bias_on_a_backend_without_one():
    blocks, _, _ = _clusters(seed=2)
    n = blocks.n_hits
    x = torch.randn(1, n, 3)
    valid = torch.ones(1, n, dtype=torch.bool)
    module = GeometricPairBias(n_layers=2, n_heads=2, hidden=8)
    bias, values, _ = module(torch.randn(n, 3) * 100, blocks)
    assert values is None
    enc = Encoder(3, d_model=8, n_heads=2, d_ff=16, n_layers=2, attention="sdpa")
    with pytest.raises(ConfigError, match="takes no pair bias"):
        enc(x, AttentionMask(valid, extra={"blocks": blocks}), pair_bias=bias)
    blocked = Encoder(3, d_model=8, n_heads=2, d_ff=16, n_layers=2, attention="cluster-blocked")
    out = blocked(x, AttentionMask(valid, extra={"blocks": blocks}), pair_bias=bias)
    assert out.shape == (1, n, 8) and torch.isfinite(out).all()


def test_edge_loss_is_balanced_cross_entropy_over_the_pairs_of_each_cluster():
    """Rule: over every (query, key) pair of distinct hits in one cluster, label = same particle > 0;
    loss = (mean -log sigmoid(z) over true pairs + mean -log(1 - sigmoid(z)) over false pairs) / 2.
    A hit in two clusters contributes its pairs in each."""
    blocks, idx, cl = _clusters(seed=4)
    n = blocks.n_hits
    g = torch.Generator().manual_seed(5)
    coords = torch.randn(n, 3, generator=g, dtype=torch.float64) * 100
    particle = torch.as_tensor(np.random.default_rng(4).integers(0, 12, n))  # 0 = noise
    module = GeometricPairBias(n_layers=1, n_heads=2, hidden=8, edge_logits=True).double()
    torch.nn.init.normal_(module.to_edge.weight, std=0.3, generator=g)
    _, _, logits = module(coords, blocks)
    loss, n_pairs = pair_edge_loss(logits, particle, blocks)

    pos, neg = [], []
    with torch.no_grad():
        for c in np.unique(cl):
            members = torch.as_tensor(idx[cl == c])
            z = module.to_edge(module.embed(pair_features(coords[members])))[..., 0]
            pid = particle[members]
            same = (pid[:, None] == pid[None, :]) & (pid[:, None] > 0)
            off = ~torch.eye(len(members), dtype=torch.bool)
            pos.append(-F.logsigmoid(z[same & off]))
            neg.append(-F.logsigmoid(-z[~same & off]))
    pos, neg = torch.cat(pos), torch.cat(neg)
    assert len(pos) > 20 and len(neg) > 20
    assert n_pairs == len(pos) + len(neg)
    assert math.isclose(float(loss.detach()), 0.5 * float(pos.mean() + neg.mean()), rel_tol=1e-9)


def test_edge_loss_trains_the_pair_mlp_to_tell_track_pairs_apart():
    """Straight tracks from a spread of vertices, two to a cluster with noise hits: after some steps on
    the edge loss alone, true pairs score above false ones."""
    rng = np.random.default_rng(0)
    coords, particle, cluster = [], [], []
    for c in range(40):
        for t in range(2):
            hits = _helix_free_track(rng.normal(0, 50), rng.uniform(-1, 1), rng.uniform(-0.02, 0.02), [32, 72, 116, 172])
            coords.append(hits)
            particle += [2 * c + t + 1] * 4
        coords.append(np.stack([rng.uniform(30, 170, 4) * np.array([1, 1, 1, 1]), rng.uniform(-3, 3, 4),
                                rng.uniform(-300, 300, 4)], 1))  # noise hits, particle 0
        particle += [0] * 4
        cluster += [c] * 12
    coords = torch.tensor(np.concatenate(coords), dtype=torch.float32)
    particle = torch.tensor(particle)
    blocks = build_blocks(np.arange(len(particle)), np.asarray(cluster), len(particle), {"block_size": 16})
    torch.manual_seed(0)
    module = GeometricPairBias(n_layers=1, n_heads=1, hidden=16, edge_logits=True)
    opt = torch.optim.Adam(module.parameters(), lr=1e-2)
    first = None
    for _ in range(150):
        loss, _ = pair_edge_loss(module(coords, blocks)[2], particle, blocks)
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.5 * first
    assert module.to_bias.weight.grad is None or module.to_bias.weight.grad.abs().sum() == 0  # bias untouched
