"""Training chunks of whole cluster groups are exact sub-problems of the event."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from contrastive_helpers import tiny_event, tiny_events
from trackpipe.io.store import write_store, EventStore
from trackpipe.models.attention import AttentionMask
from trackpipe.locality.pair_bias import GeometricPairBias
from trackpipe.models.contrastive import ContrastiveModel
from trackpipe.models.backbone import Encoder
from trackpipe.targets import fit_preprocessing
from trackpipe.train.data import collate, load_tables
from trackpipe.train.locality import LOCALITY_DEFAULTS, chunk_by_clusters, cluster_groups, load_arrays


@pytest.mark.parametrize("algorithm,pair_bias", [("iterative_window", False), ("grid_window", False),
                                                  ("grid_window", True)])  # disjoint / overlapping clusters
def test_chunked_embeddings_equal_whole_event_embeddings(tmp_path, algorithm, pair_bias):
    path = write_store(tmp_path / "s", tiny_events(2, seed=3))
    store = EventStore(path)
    prep = fit_preprocessing(*load_tables(store))
    settings = {**LOCALITY_DEFAULTS, "algorithm": algorithm}
    whole = load_arrays(store, prep, store.event_ids, settings)
    chunks = chunk_by_clusters(whole, 40, seed=1)
    assert len(chunks) > 2 * len(whole)
    # every hit of every event exactly once
    key = lambda d: np.sort(d.fields["hit_id"] + 10**6 * np.repeat(d.event_ids, d.lengths))
    np.testing.assert_array_equal(key(chunks), key(whole))
    torch.manual_seed(0)
    bias, coordinates = None, None
    if pair_bias:  # the geometric pair bias is computed per cluster too, so chunks stay exact
        bias = GeometricPairBias(n_layers=2, n_heads=2, hidden=8)
        torch.nn.init.normal_(bias.to_bias.weight, std=0.5)
        assert prep.input_features[:3] == ["x", "y", "z"]
        coordinates = ([0, 1, 2], prep.input_mean[:3], prep.input_std[:3])
    model = ContrastiveModel(Encoder(6, d_model=16, n_heads=2, d_ff=16, n_layers=2, dropout=0.0,
                                     attention="cluster-blocked"), 16, embedding_dim=4, local_features=True,
                             pair_bias=bias, coordinate_inputs=coordinates).eval()
    with torch.no_grad():
        ref = {}
        for i in range(len(whole)):
            b = collate(whole, [i])
            ref.update(zip(whole.event_ids[i] * 10**6 + b["hit_id"][0].numpy(), model(b)["embedding"][0].numpy()))
        for i in range(len(chunks)):
            b = collate(chunks, [i])
            emb = model(b)["embedding"][0].numpy()
            hits = chunks.event_ids[i] * 10**6 + b["hit_id"][0].numpy()
            np.testing.assert_allclose(emb, np.stack([ref[h] for h in hits]), atol=1e-5)


def test_a_region_linked_by_overlapping_windows_is_cut_between_windows(tmp_path):
    """Wide half-overlapping windows link each region of the tiny events into one cluster group; chunks cut
    it between windows. A hit is interior (an anchor) in at most one chunk, the one holding all its windows,
    where a one-layer encoder on per-hit inputs gives it exactly its whole-event embedding (with cluster-
    relative inputs or more layers, cut neighbours differ); cut hits are keys elsewhere."""
    path = write_store(tmp_path / "s", [tiny_event(e, seed=5 + e, n_barrel=60, n_endcap=16) for e in (1, 2)])
    store = EventStore(path)
    prep = fit_preprocessing(*load_tables(store))
    wide = {"width_u": 60.0, "width_v": 400.0, "overlap_u": 0.5, "overlap_v": 0.5}
    settings = {**LOCALITY_DEFAULTS, "algorithm": "grid_window",
                "clustering": {"barrel": wide, "endcap": {**wide, "width_v": 60.0}}}
    whole = load_arrays(store, prep, store.event_ids, settings)
    assert max(np.bincount(cluster_groups(b)).max() for b in whole.blocks) > 150  # one group per region
    chunks = chunk_by_clusters(whole, 40, seed=2)
    key = lambda d: d.fields["hit_id"] + 10**6 * np.repeat(d.event_ids, d.lengths)
    all_keys, inner_keys = key(chunks), key(chunks)[chunks.fields["interior"]]
    assert len(np.unique(inner_keys)) == len(inner_keys)       # interior in at most one chunk
    assert len(inner_keys) >= 0.5 * whole.lengths.sum()        # most hits are interior somewhere
    assert set(all_keys) == set(key(whole))                    # every hit is in some chunk
    assert len(all_keys) > len(key(whole))                     # cut hits are in several chunks
    torch.manual_seed(0)
    model = ContrastiveModel(Encoder(3, d_model=16, n_heads=2, d_ff=16, n_layers=1, dropout=0.0,
                                     attention="cluster-blocked"), 16, embedding_dim=4, local_features=False).eval()
    with torch.no_grad():
        ref = {}
        for i in range(len(whole)):
            b = collate(whole, [i])
            ref.update(zip(whole.event_ids[i] * 10**6 + b["hit_id"][0].numpy(), model(b)["embedding"][0].numpy()))
        anchors, anchors_all_hits = 0, 0
        for i in range(len(chunks)):
            b = collate(chunks, [i])
            out = model(b)
            inner = b["interior"][0].numpy()
            hits = chunks.event_ids[i] * 10**6 + b["hit_id"][0].numpy()
            np.testing.assert_allclose(out["embedding"][0].numpy()[inner], np.stack([ref[h] for h in hits[inner]]),
                                       atol=1e-5)
            anchors += model.loss(out, b)[1]["con_loss__den"]
            del b["interior"]  # the same chunk with every hit an anchor
            anchors_all_hits += model.loss(out, b)[1]["con_loss__den"]
        assert 0 < anchors < anchors_all_hits  # cut hits were left out of the anchors
