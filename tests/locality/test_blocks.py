"""Block tables: exactly the block pairs that share a cluster, built without an N² mask; on-disk cache."""

import logging

import numpy as np
import pytest

from trackpipe.errors import DataError
from trackpipe.locality.blocks import build_blocks, cache_key, cached_blocks


def _random_memberships(n, n_clusters, overlap, seed):
    rng = np.random.default_rng(seed)
    idx = np.arange(n)
    cl = rng.integers(0, n_clusters, n)
    if overlap:  # some hits in a second cluster
        extra = rng.choice(n, n // 5, replace=False)
        idx = np.concatenate([idx, extra])
        cl = np.concatenate([cl, rng.integers(0, n_clusters, len(extra))])
        keep = np.unique(np.stack([idx, cl]), axis=1)
        idx, cl = keep[0], keep[1]
    return idx, cl


def _dense_block_reference(blocks):
    """Token-level same-cluster mask (padding tokens: their own cluster), reduced to blocks with any()."""
    bs, nb = blocks.block_size, blocks.n_blocks
    tc = np.full(nb * bs, -1)
    tc[:blocks.n_tokens] = blocks.token_cluster
    dense = tc[:, None] == tc[None, :]
    return dense.reshape(nb, bs, nb, bs).any(axis=(1, 3))


def _table(blocks):
    nb = blocks.n_blocks
    t = np.zeros((nb, nb), bool)
    for i in range(nb):
        t[i, blocks.kv_indices[i, :blocks.kv_num_blocks[i]]] = True
    return t


@pytest.mark.parametrize("overlap", [False, True])
@pytest.mark.parametrize("n,n_clusters,bs", [(300, 40, 16), (1000, 7, 32), (517, 517, 8), (64, 1, 16)])
def test_block_table_marks_exactly_the_pairs_sharing_a_cluster(n, n_clusters, bs, overlap):
    idx, cl = _random_memberships(n, n_clusters, overlap, seed=n)
    b = build_blocks(idx, cl, n, {"block_size": bs})
    assert np.all(np.diff(b.token_cluster) >= 0)
    assert sorted(zip(b.token_hit.tolist(), b.token_cluster.tolist())) == sorted(
        zip(idx.tolist(), np.unique(cl, return_inverse=True)[1].tolist()))
    np.testing.assert_array_equal(_table(b), _dense_block_reference(b))
    np.testing.assert_array_equal(b.hit_multiplicity, np.bincount(idx, minlength=n))


def test_block_mask_from_kv_blocks_matches_the_dense_mask():
    idx, cl = _random_memberships(200, 15, False, seed=3)
    b = build_blocks(idx, cl, 200, {"block_size": 16})
    bm = b.block_mask()
    dense_blocks = bm.to_dense()[0, 0].numpy().astype(bool)
    np.testing.assert_array_equal(dense_blocks, _dense_block_reference(b))


def test_buckets_cover_every_token_once_with_their_cluster():
    idx, cl = _random_memberships(700, 60, True, seed=5)
    b = build_blocks(idx, cl, 700)
    seen = []
    for L, table in b.buckets():
        assert table.shape[1] == L and L >= 8 and (L & (L - 1)) == 0
        for row in table:
            tok = row[row >= 0]
            assert len(np.unique(b.token_cluster[tok])) == 1
            seen.extend(tok.tolist())
    assert sorted(seen) == list(range(b.n_tokens))


def test_hits_without_cluster_are_rejected():
    with pytest.raises(DataError, match="no cluster"):
        build_blocks(np.array([0, 1]), np.array([0, 0]), 3)
    with pytest.raises(DataError, match="out of range"):
        build_blocks(np.array([0, 5]), np.array([0, 0]), 3)


def test_cache_is_reused_and_a_corrupted_file_is_rebuilt(tmp_path, caplog):
    idx, cl = _random_memberships(500, 30, True, seed=9)
    calls = []

    def build():
        calls.append(1)
        return build_blocks(idx, cl, 500)

    key = cache_key(7, {"x": np.arange(500.0)}, "grid_window", {"a": 1})
    first, loaded = cached_blocks(tmp_path, 7, key, build)
    assert not loaded and len(calls) == 1
    second, loaded = cached_blocks(tmp_path, 7, key, build)
    assert loaded and len(calls) == 1  # second epoch: no rebuild
    for name in ("token_hit", "token_cluster", "kv_num_blocks", "kv_indices", "bucket_tokens"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))
    (path,) = tmp_path.glob("event000000007-*.blocks.npz")
    # other parameters -> another key -> another file, built once
    cached_blocks(tmp_path, 7, cache_key(7, {"x": np.arange(500.0)}, "grid_window", {"a": 2}), build)
    assert len(calls) == 2 and len(list(tmp_path.glob("*.npz"))) == 2
    # corrupt: truncate the file
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="unreadable"):
        cached_blocks(tmp_path, 7, key, build, on_corrupt="raise")
    with caplog.at_level(logging.WARNING):
        rebuilt, loaded = cached_blocks(tmp_path, 7, key, build)
    assert not loaded and len(calls) == 3 and "rebuilding" in caplog.text
    np.testing.assert_array_equal(rebuilt.kv_indices, first.kv_indices)
    assert cached_blocks(tmp_path, 7, key, build)[1]  # the rebuilt file is valid again


def test_cache_checksum_catches_silent_changes(tmp_path):
    idx, cl = _random_memberships(300, 20, False, seed=2)
    b = build_blocks(idx, cl, 300)
    key = "k"
    from trackpipe.locality.blocks import load_blocks, save_blocks

    path = tmp_path / "x.npz"
    save_blocks(path, b, key)
    # rewrite one array with a valid npz container but different content
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["token_hit"] = arrays["token_hit"][::-1].copy()
    np.savez(path, **arrays)
    with pytest.raises(DataError, match="checksum"):
        load_blocks(path, key)
    with pytest.raises(DataError, match="other data"):
        save_blocks(path, b, key)
        load_blocks(path, "another key")


def test_event_blocks_from_a_real_event_are_cached_per_parameters(trackml_event, tmp_path, monkeypatch):
    from trackpipe.locality import pipeline
    from trackpipe.locality.events import pixel_hits

    hits = pixel_hits(trackml_event.hits)
    calls = []
    real = pipeline.cluster_event
    monkeypatch.setattr(pipeline, "cluster_event", lambda *a, **k: calls.append(1) or real(*a, **k))
    b1, loaded1 = pipeline.event_blocks(1, hits, "grid_window", cache_dir=tmp_path)
    b2, loaded2 = pipeline.event_blocks(1, hits, "grid_window", cache_dir=tmp_path)
    assert (loaded1, loaded2) == (False, True) and len(calls) == 1
    np.testing.assert_array_equal(b1.token_hit, b2.token_hit)
    assert b1.n_hits == len(hits) and b1.hit_multiplicity.min() >= 1
    _, loaded3 = pipeline.event_blocks(1, hits, "grid_window", {"barrel": {"width_u": 10.0}}, cache_dir=tmp_path)
    assert not loaded3 and len(calls) == 2
