"""Track formation from embeddings: disjoint, exact on separated embeddings, equal to a brute-force
pairwise reference, and mutual kNN stops chaining."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.sparse.csgraph import connected_components
from scipy import sparse

from trackpipe.errors import ConfigError, DataError
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


def selection_fields(particle, weight, pt, pz=None):
    """Per-hit selection truth: the particle's pt and pz per hit, one barrel layer per hit of a particle
    (volume 8, layers 1, 2, ... in hit order), so every particle with >= 3 hits is reconstructable."""
    particle = np.asarray(particle, np.int64)
    layer = np.zeros(len(particle), np.int32)
    for p in np.unique(particle):
        layer[particle == p] = np.arange(1, int((particle == p).sum()) + 1)
    n = len(particle)
    return {"particle_id": particle, "weight": np.asarray(weight, np.float32), "pt": np.asarray(pt, np.float32),
            "pz": np.zeros(n, np.float32) if pz is None else np.asarray(pz, np.float32),
            "volume_id": np.full(n, 8, np.int32), "layer_id": layer}


def one_cluster(n):
    return build_blocks(np.arange(n), np.zeros(n, int), n)


def test_threshold_selection_prefers_the_separating_threshold():
    emb, particle, cluster = separated_case(seed=3, noise=0.3)
    blocks = build_blocks(np.arange(len(particle)), cluster, len(particle))
    weight = np.full(len(particle), 1.0 / len(particle))
    fields = selection_fields(particle, weight, np.full(len(particle), 2.0))
    best, rows = select_threshold([(7, emb, blocks, fields)], {"method": "knn", "k": 4, "mutual": True},
                                  [-1.0, 0.5, 0.999])
    dm = {r["threshold"]: r["dm_efficiency"] for r in rows}
    score = {r["threshold"]: r["trackml_score"] for r in rows}
    assert best == 0.5 and dm[0.5] > max(dm[-1.0], dm[0.999]) and score[0.5] > max(score[-1.0], score[0.999])
    assert all(r["n_selected_particles"] == 30 for r in rows)


def test_threshold_is_chosen_on_dm_efficiency_at_high_pt_not_on_the_trackml_score():
    """At 0.8 the only particle above 0.9 GeV (A, a chain of cosines 0.85) is one track but two heavy
    low-pT particles (B, C: cosine 0.85 to each other) merge into one 50/50 track; at 0.9 B and C are
    separate but A falls apart. The TrackML score prefers 0.9, the DM efficiency at pT > 0.9 GeV 0.8."""
    a = np.arccos(0.85)
    chain = [np.r_[np.cos(i * a), np.sin(i * a), 0.0, 0.0] for i in range(4)]        # A: 4 hits, plane (0, 1)
    b = [np.r_[0.0, 0.0, 1.0, 0.0]] * 4                                                  # B: plane (2, 3)
    c = [np.r_[0.0, 0.0, np.cos(a), np.sin(a)]] * 4                                      # C: cosine 0.85 to B
    emb = torch.as_tensor(np.array(chain + b + c), dtype=torch.float32)
    particle = np.repeat([1, 2, 3], 4)
    fields = selection_fields(particle, np.where(particle == 1, 0.01, 0.1), np.where(particle == 1, 2.0, 0.5))
    best, rows = select_threshold([(0, emb, one_cluster(12), fields)], {"method": "threshold", "k": 1, "mutual": False},
                                  [0.8, 0.9])
    by = {r["threshold"]: r for r in rows}
    assert by[0.8]["dm_efficiency"] == 1.0 and by[0.9]["dm_efficiency"] == 0.0
    assert by[0.9]["trackml_score"] == pytest.approx(0.8 / 0.84) and by[0.8]["trackml_score"] == pytest.approx(0.04 / 0.84)
    assert by[0.8]["n_selected_particles"] == by[0.9]["n_selected_particles"] == 1
    assert best == 0.8
    # The fake rate of the metric code rides along: at 0.8 the B+C track's majority (B, 0.5 GeV) is not
    # selected, so A's track is the only selected cluster and it is DM-matched.
    assert by[0.8]["fake_rate"] == 0.0 and by[0.9]["fake_rate"] is None  # 0.9: no selected cluster of >= 3 hits


def test_dm_efficiency_pools_particles_over_events():
    """Event 1: one selected particle, matched. Event 2: three selected particles, one matched, plus a
    matched particle below 0.9 GeV. Pooled: 2 of 4 = 0.5 (the mean of per-event ratios would be 2/3)."""
    eye = np.eye(16)
    ev1 = torch.as_tensor(np.array([eye[0]] * 4), dtype=torch.float32)
    f1 = selection_fields(np.full(4, 1), np.full(4, 0.25), np.full(4, 1.5))
    # P1 matched (one direction), P2 and P3 scattered (every hit its own direction), P4 matched but 0.5 GeV
    ev2 = torch.as_tensor(np.array([eye[0]] * 4 + [eye[i] for i in range(1, 9)] + [eye[9]] * 4), dtype=torch.float32)
    pid2 = np.repeat([1, 2, 3, 4], 4)
    f2 = selection_fields(pid2, np.full(16, 1 / 16), np.where(pid2 == 4, 0.5, 3.0), pz=np.where(pid2 == 1, 1.0, 0.0))
    _, rows = select_threshold([(1, ev1, one_cluster(4), f1), (2, ev2, one_cluster(16), f2)],
                               {"method": "threshold", "k": 1, "mutual": False}, [0.5])
    (row,) = rows
    assert row["n_selected_particles"] == 4 and row["n_dm_matched"] == 2
    assert row["dm_efficiency"] == 0.5


def test_threshold_selection_without_the_truth_fields_names_them():
    emb, particle, cluster = separated_case()
    fields = {"particle_id": particle, "weight": np.ones(len(particle))}
    blocks = build_blocks(np.arange(len(particle)), cluster, len(particle))
    with pytest.raises(DataError, match="pt") as e:
        select_threshold([(4, emb, blocks, fields)], {"method": "knn", "k": 4, "mutual": True}, [0.5])
    assert e.value.event == 4 and "layer_id" in e.value.column


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


# --- one-hit-per-layer track building ----------------------------------------------------------------

def sequential_greedy(n, src, dst, sim, layer, max_per_layer):
    """Reference: Kruskal's order (stable by decreasing similarity), join two tracks when no layer then
    holds more than max_per_layer of their hits."""
    parent = list(range(n))
    count = [{int(layer[i]): 1} for i in range(n)]

    def find(a):
        while parent[a] != a:
            a = parent[a]
        return a

    for e in np.argsort(-np.asarray(sim, np.float64), kind="stable"):
        a, b = find(int(src[e])), find(int(dst[e]))
        if a == b or any(count[a].get(lay, 0) + c > max_per_layer for lay, c in count[b].items()):
            continue
        parent[b] = a
        for lay, c in count[b].items():
            count[a][lay] = count[a].get(lay, 0) + c
    return np.array([find(i) for i in range(n)])


@pytest.mark.parametrize("max_per_layer", [1, 2])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_layer_constrained_rounds_equal_sequential_greedy(max_per_layer, seed):
    from trackpipe.tracking.embedding import layer_constrained_components

    rng = np.random.default_rng(seed)
    n, e = 400, 3000
    layer = rng.integers(0, 8, n)
    src, dst = rng.integers(0, n, e), rng.integers(0, n, e)
    sim = rng.choice(np.linspace(0, 1, 50), e).astype(np.float32)  # many ties: the stable order decides
    got = layer_constrained_components(n, src, dst, sim, layer, max_per_layer)
    assert same_partition(got, sequential_greedy(n, src, dst, sim, layer, max_per_layer))
    # no track holds more than max_per_layer hits on a layer
    assert np.bincount(got * 8 + layer).max() <= max_per_layer


def test_one_wrong_edge_does_not_chain_two_tracks():
    """Particles A (hits 0-3) and B (hits 4-7) cross layers 0-3; one wrong edge A0-B1 above the threshold
    joins them into one component, but both tracks already hold layers 0 and 1 when it comes."""
    from trackpipe.tracking.embedding import tracks_from_edges

    layer = np.tile(np.arange(4), 2)
    src = np.array([0, 1, 2, 4, 5, 6, 0])
    dst = np.array([1, 2, 3, 5, 6, 7, 5])
    sim = np.array([0.97, 0.96, 0.95, 0.97, 0.96, 0.95, 0.92], np.float32)
    plain = tracks_from_edges(8, src, dst, sim, threshold=0.9, mutual=False)
    assert len(np.unique(plain)) == 1
    built = tracks_from_edges(8, src, dst, sim, threshold=0.9, mutual=False, max_hits_per_layer=1, layer=layer)
    assert same_partition(built, np.repeat([0, 1], 4))


def test_a_second_hit_on_a_layer_needs_max_two():
    """TrackML's overlapping modules: hits 0 and 1 of one particle are both on layer 0. The edges 0-2 and 1-3
    come first and make two half-tracks that both hold layer 0: with one hit per layer they stay apart;
    with two they join."""
    from trackpipe.tracking.embedding import tracks_from_edges

    layer = np.array([0, 0, 1, 2])
    src, dst = np.array([0, 1, 2, 0]), np.array([2, 3, 3, 1])
    sim = np.ones(4, np.float32)
    assert len(np.unique(tracks_from_edges(4, src, dst, sim, threshold=0.5, mutual=False, max_hits_per_layer=1,
                                           layer=layer))) == 2
    assert len(np.unique(tracks_from_edges(4, src, dst, sim, threshold=0.5, mutual=False, max_hits_per_layer=2,
                                           layer=layer))) == 1


def test_layer_limit_needs_layers_and_a_valid_value():
    from trackpipe.tracking.embedding import tracks_from_embedding

    emb, particle, cluster = separated_case()
    blocks = build_blocks(np.arange(len(particle)), cluster, len(particle))
    with pytest.raises(DataError, match="layer_id"):
        tracks_from_embedding(emb, blocks, max_hits_per_layer=1)
    with pytest.raises(ConfigError, match="max_hits_per_layer"):
        tracks_from_embedding(emb, blocks, max_hits_per_layer=3, layer=np.zeros(len(particle), int))
