"""Multi-positive InfoNCE inside locality clusters, against a straightforward per-anchor loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from trackpipe.locality.blocks import build_blocks
from trackpipe.models.contrastive import contrastive_loss


def reference_loss(emb, particle, anchor, memberships, T):
    """The formula of seed 004 §3.4 written out: for every (anchor, cluster) membership, a softmax over
    the other hits of the cluster, averaged over the anchor's positives; then the mean over anchors."""
    hit_index, cluster_id = memberships
    terms = []
    for c in np.unique(cluster_id):
        members = hit_index[cluster_id == c]
        for i in members:
            if not anchor[i]:
                continue
            others = [u for u in members if u != i]
            positives = [p for p in others if particle[p] == particle[i] and particle[i] > 0]
            if not positives:
                continue
            sim = {u: float(emb[i] @ emb[u]) / T for u in others}
            log_den = math.log(sum(math.exp(s) for s in sim.values()))
            terms.append(-sum(sim[p] - log_den for p in positives) / len(positives))
    return sum(terms) / len(terms), len(terms)


def random_case(seed, n=120, n_clusters=9, overlap=False, dim=6):
    rng = np.random.default_rng(seed)
    particle = rng.integers(0, 25, n)  # 0 = noise
    anchor = (particle > 0) & (rng.random(n) < 0.7)
    cluster = rng.integers(0, n_clusters, n)
    hit_index, cluster_id = np.arange(n), cluster
    if overlap:  # a quarter of the hits also belong to a second cluster
        extra = rng.choice(n, n // 4, replace=False)
        hit_index = np.concatenate([hit_index, extra])
        cluster_id = np.concatenate([cluster_id, (cluster[extra] + 1) % n_clusters])
    emb = F.normalize(torch.as_tensor(rng.normal(size=(n, dim)), dtype=torch.float32), dim=-1)
    return emb, particle, anchor, (hit_index, cluster_id)


@pytest.mark.parametrize("overlap", [False, True])
@pytest.mark.parametrize("T", [0.1, 0.5])
def test_loss_matches_per_anchor_loop(overlap, T):
    emb, particle, anchor, mem = random_case(3, overlap=overlap)
    blocks = build_blocks(*mem, len(particle), {"block_size": 16, "min_bucket": 4})
    assert len(blocks.bucket_length) > 1  # several bucket lengths exercised
    loss, n = contrastive_loss(emb, torch.as_tensor(particle), torch.as_tensor(anchor), blocks, T)
    ref, n_ref = reference_loss(emb.numpy().astype(np.float64), particle, anchor, mem, T)
    assert n == n_ref > 0
    assert float(loss) == pytest.approx(ref, rel=1e-5)


def test_gradient_is_finite_with_keyless_and_positive_free_rows():
    # clusters of one hit (no keys) and anchors without positives must not poison the gradient
    emb, particle, anchor, _ = random_case(5, n=30)
    mem = (np.arange(30), np.r_[np.arange(10), np.full(20, 10)])
    blocks = build_blocks(*mem, 30, {"block_size": 8, "min_bucket": 2})
    emb = emb.clone().requires_grad_(True)
    loss, n = contrastive_loss(emb, torch.as_tensor(particle), torch.as_tensor(anchor), blocks, 0.1)
    loss.backward()
    assert n > 0 and torch.isfinite(emb.grad).all() and emb.grad.abs().sum() > 0


def test_chunk_without_anchors_gives_a_zero_loss_that_backward_accepts():
    # A training chunk of only low-pT, noise or cut-off hits: the loop calls backward() on every batch.
    emb, particle, _, mem = random_case(7, n=40)
    blocks = build_blocks(*mem, 40, {"block_size": 8, "min_bucket": 2})
    emb = emb.clone().requires_grad_(True)
    loss, n = contrastive_loss(emb, torch.as_tensor(particle), torch.zeros(40, dtype=torch.bool), blocks, 0.1)
    loss.backward()
    assert n == 0 and float(loss) == 0.0 and torch.equal(emb.grad, torch.zeros_like(emb))


def test_track_aligned_embeddings_have_lower_loss_and_only_anchors_count():
    rng = np.random.default_rng(0)
    particle = np.repeat(np.arange(1, 11), 5)
    mem = (np.arange(50), np.repeat(np.arange(2), 25))
    blocks = build_blocks(*mem, 50)
    directions = F.normalize(torch.as_tensor(rng.normal(size=(11, 8)), dtype=torch.float32), dim=-1)
    aligned = directions[particle]
    shuffled = aligned[torch.as_tensor(rng.permutation(50))]
    anchor = torch.ones(50, dtype=torch.bool)
    good, _ = contrastive_loss(aligned, torch.as_tensor(particle), anchor, blocks, 0.1)
    bad, _ = contrastive_loss(shuffled, torch.as_tensor(particle), anchor, blocks, 0.1)
    assert float(good) < float(bad) - 1.0
    none, n = contrastive_loss(aligned, torch.as_tensor(particle), torch.zeros(50, dtype=torch.bool), blocks, 0.1)
    assert n == 0 and float(none) == 0.0


def test_cluster_relative_features_match_a_loop():
    from trackpipe.models.contrastive import cluster_relative

    rng = np.random.default_rng(2)
    n = 40
    x = torch.as_tensor(rng.normal(size=(n, 3)), dtype=torch.float32)
    hit_index = np.r_[np.arange(n), [0, 5, 9]]
    cluster_id = np.r_[rng.integers(0, 5, n), [5, 5, 5]]  # hits 0, 5, 9 also form a sixth cluster
    rel = cluster_relative(x, build_blocks(hit_index, cluster_id, n)).numpy()
    xs = x.numpy().astype(np.float64)
    for i in range(n):
        per = []
        for c in cluster_id[hit_index == i]:
            m = xs[hit_index[cluster_id == c]]
            per.append((xs[i] - m.mean(0)) / np.maximum(m.std(0), 1e-3))
        np.testing.assert_allclose(rel[i], np.mean(per, axis=0), atol=1e-4)
