"""Track formation from embeddings: disjoint, exact on separated embeddings, equal to a brute-force
pairwise reference, and mutual kNN stops chaining."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.sparse.csgraph import connected_components
from scipy import sparse

from trackpipe.errors import ConfigError
from trackpipe.locality.blocks import build_blocks
from trackpipe.tracking.embedding import candidate_edges, select_threshold, tracks_from_embedding


def separated_case(seed=0, n_particles=30, hits=5, noise=0.05):
    rng = np.random.default_rng(seed)
    particle = np.repeat(np.arange(1, n_particles + 1), hits)
    directions = F.normalize(torch.as_tensor(rng.normal(size=(n_particles + 1, 16)), dtype=torch.float32), dim=-1)
    emb = F.normalize(directions[particle] + noise * torch.randn(len(particle), 16, generator=torch.Generator().manual_seed(seed)), dim=-1)
    cluster = (particle - 1) // 6  # six particles per locality cluster
    perm = rng.permutation(len(particle))
    return emb[perm], particle[perm], cluster[perm]


def same_partition(a, b):
    pairs = np.unique(np.stack([a, b]), axis=1)
    return len(pairs[0]) == len(np.unique(a)) == len(np.unique(b))


@pytest.mark.parametrize("method", ["knn", "threshold"])
def test_separated_embeddings_give_the_particles(method):
    emb, particle, cluster = separated_case()
    blocks = build_blocks(np.arange(len(particle)), cluster, len(particle), {"min_bucket": 4})
    tracks = tracks_from_embedding(emb, blocks, method=method, k=4, threshold=0.8, mutual=True)
    assert tracks.shape == particle.shape and tracks.dtype == np.int64
    assert same_partition(tracks, particle)


def test_threshold_method_equals_brute_force_components():
    rng = np.random.default_rng(1)
    n = 90
    emb = F.normalize(torch.as_tensor(rng.normal(size=(n, 3)), dtype=torch.float32), dim=-1)
    cluster = rng.integers(0, 7, n)
    blocks = build_blocks(np.arange(n), cluster, n, {"min_bucket": 4})
    tracks = tracks_from_embedding(emb, blocks, method="threshold", threshold=0.6, mutual=False)
    e = emb.numpy()
    adj = np.array([[i != j and cluster[i] == cluster[j] and e[i] @ e[j] >= 0.6 for j in range(n)] for i in range(n)])
    _, ref = connected_components(sparse.csr_matrix(adj), directed=False)
    assert same_partition(tracks, ref)


def test_mutual_knn_does_not_chain_two_tracks_through_one_hit():
    # two tight groups and one hit between them: with k = 3 it chooses members of both groups, but
    # the groups' members prefer each other, so mutual kNN keeps the groups apart.
    a = np.array([[1.0, 0.0], [0.999, 0.04], [0.999, -0.04]])
    b = a[:, ::-1].copy()
    mid = np.array([[np.sqrt(0.5), np.sqrt(0.5)]])
    emb = torch.as_tensor(np.vstack([a, b, mid]), dtype=torch.float32)
    blocks = build_blocks(np.arange(7), np.zeros(7, int), 7)
    chained = tracks_from_embedding(emb, blocks, k=3, threshold=0.0, mutual=False)
    kept = tracks_from_embedding(emb, blocks, k=2, threshold=0.0, mutual=True)
    assert len(np.unique(chained)) == 1
    assert len(np.unique(kept[:3])) == 1 and len(np.unique(kept[3:6])) == 1 and kept[0] != kept[3]


def test_overlapping_clusters_still_give_one_track_per_hit():
    emb, particle, cluster = separated_case(seed=2)
    n = len(particle)
    extra = np.flatnonzero(cluster == 0)
    blocks = build_blocks(np.r_[np.arange(n), extra], np.r_[cluster, np.full(len(extra), cluster.max() + 1)], n)
    tracks = tracks_from_embedding(emb, blocks, k=4, threshold=0.8)
    assert len(tracks) == n and same_partition(tracks, particle)


def test_threshold_selection_prefers_the_separating_threshold():
    emb, particle, cluster = separated_case(seed=3, noise=0.3)
    blocks = build_blocks(np.arange(len(particle)), cluster, len(particle))
    weight = np.full(len(particle), 1.0 / len(particle))
    best, rows = select_threshold([(emb, blocks, particle, weight)], {"method": "knn", "k": 4, "mutual": True},
                                  [-1.0, 0.5, 0.999])
    scores = {r["threshold"]: r["score"] for r in rows}
    assert best == 0.5 and scores[0.5] > scores[-1.0] and scores[0.5] > scores[0.999]


def test_bad_method_is_rejected():
    with pytest.raises(ConfigError):
        candidate_edges(torch.zeros(2, 2), build_blocks(np.arange(2), np.zeros(2, int), 2), method="hdbscan")


@pytest.mark.parametrize("method", ["knn", "threshold"])
def test_chunked_scoring_gives_the_same_edges(method, monkeypatch):
    """A giant cluster is scored in chunks of query rows (bounded memory), with the same edges as one pass."""
    import trackpipe.tracking.embedding as embedding

    rng = np.random.default_rng(2)
    n = 150
    emb = F.normalize(torch.as_tensor(rng.normal(size=(n, 4)), dtype=torch.float32), dim=-1)
    cluster = np.r_[np.zeros(100, int), rng.integers(1, 6, 50)]  # one big cluster and a few small ones
    blocks = build_blocks(np.arange(n), cluster, n, {"min_bucket": 4})
    whole = candidate_edges(emb, blocks, method=method, k=5)
    monkeypatch.setattr(embedding, "MAX_SCORES", 700)  # forces row chunks of the big cluster, cluster groups
    chunked = candidate_edges(emb, blocks, method=method, k=5)
    key = lambda e: sorted(zip(e[0].tolist(), e[1].tolist(), np.round(e[2], 6).tolist()))  # noqa: E731
    assert len(whole[0]) > 0 and key(chunked) == key(whole)
