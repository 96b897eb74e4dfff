"""Training chunks of whole cluster groups are exact sub-problems of the event."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from contrastive_helpers import tiny_events
from trackpipe.io.store import write_store, EventStore
from trackpipe.models.attention import AttentionMask
from trackpipe.models.contrastive import ContrastiveModel
from trackpipe.models.backbone import Encoder
from trackpipe.targets import fit_preprocessing
from trackpipe.train.data import collate, load_tables
from trackpipe.train.locality import LOCALITY_DEFAULTS, chunk_by_clusters, load_arrays


@pytest.mark.parametrize("algorithm", ["iterative_window", "grid_window"])  # disjoint / overlapping clusters
def test_chunked_embeddings_equal_whole_event_embeddings(tmp_path, algorithm):
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
    model = ContrastiveModel(Encoder(6, d_model=16, n_heads=2, d_ff=16, n_layers=2, dropout=0.0,
                                     attention="cluster-blocked"), 16, embedding_dim=4, local_features=True).eval()
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
