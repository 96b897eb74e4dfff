"""The cluster-blocked backend (and flex with cluster tables) on padded batches equals dense masked
attention; the Part-2-style classifier runs on it and events of a batch never see each other."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from trackpipe.locality.blocks import build_blocks
from trackpipe.models.attention import AttentionMask, build_attention
from trackpipe.models.heads import ClassificationHead, EncoderModel
from trackpipe.models.backbone import Encoder
from trackpipe.locality.blocks import batch_blocks


def event_blocks_and_mask(lengths, n_max, seed=0):
    rng = np.random.default_rng(seed)
    per_event, cluster_of = [], np.full(len(lengths) * n_max, -1)
    for b, n in enumerate(lengths):
        cl = rng.integers(0, max(n // 6, 1), n)
        per_event.append(build_blocks(np.arange(n), cl, n, {"block_size": 16, "min_bucket": 4}))
        cluster_of[b * n_max:b * n_max + n] = cl + 1000 * (b + 1)
    valid = torch.zeros(len(lengths), n_max, dtype=torch.bool)
    for b, n in enumerate(lengths):
        valid[b, :n] = True
    return per_event, cluster_of.reshape(len(lengths), n_max), valid


def dense_reference(q, k, v, cluster_of, valid):
    """Dense SDPA with an N×N same-cluster mask per event; padded queries attend to themselves only."""
    c = torch.as_tensor(cluster_of)
    same = (c[:, :, None] == c[:, None, :]) & valid[:, None, :] & valid[:, :, None]
    same |= torch.eye(c.shape[1], dtype=torch.bool)[None]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=same[:, None])


def test_cluster_blocked_backend_equals_dense_masked_attention_with_gradients():
    lengths, n_max = [70, 45, 58], 70
    per_event, cluster_of, valid = event_blocks_and_mask(lengths, n_max)
    mask = AttentionMask(valid, extra={"blocks": batch_blocks(per_event, n_max)})
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(3, 2, n_max, 8, generator=g, requires_grad=True) for _ in range(3))
    out = build_attention("cluster-blocked")(q, k, v, mask)
    ref = dense_reference(q, k, v, cluster_of, valid)
    m = valid[:, None, :, None]
    torch.testing.assert_close(out * m, ref * m, atol=2e-6, rtol=1e-5)
    (out * m).sum().backward()
    grads = [x.grad.clone() for x in (q, k, v)]
    for x in (q, k, v):
        x.grad = None
    (ref * m).sum().backward()
    for a, x in zip(grads, (q, k, v)):
        torch.testing.assert_close(a, x.grad, atol=2e-5, rtol=1e-4)


def test_flex_backend_takes_the_cluster_tables():
    lengths, n_max = [50, 33], 50
    per_event, cluster_of, valid = event_blocks_and_mask(lengths, n_max, seed=4)
    mask = AttentionMask(valid, extra={"blocks": batch_blocks(per_event, n_max)})
    q, k, v = (torch.randn(2, 2, n_max, 8) for _ in range(3))
    with torch.no_grad():
        out = build_attention("flex", {"compile": "never"})(q, k, v, mask)
    m = valid[:, None, :, None]
    torch.testing.assert_close(out * m, dense_reference(q, k, v, cluster_of, valid) * m, atol=2e-6, rtol=1e-5)


def test_backend_without_tables_and_bad_options_fail_clearly():
    from trackpipe.errors import ConfigError

    q = torch.randn(1, 1, 4, 2)
    with pytest.raises(ConfigError, match="block tables"):
        build_attention("cluster-blocked")(q, q, q, AttentionMask(torch.ones(1, 4, dtype=torch.bool)))
    with pytest.raises(ConfigError, match="unknown"):
        build_attention("cluster-blocked", {"locallity": {}})


def test_part2_classifier_on_cluster_attention_keeps_events_apart():
    """EncCla with cluster-restricted attention: a padded batch of two events gives each event exactly
    what it gets alone (no attention across events or into padding)."""
    torch.manual_seed(0)
    lengths, n_max = [60, 41], 60
    per_event, _, valid = event_blocks_and_mask(lengths, n_max, seed=2)
    model = EncoderModel(Encoder(3, d_model=16, n_heads=2, d_ff=32, n_layers=2, dropout=0.0,
                                 attention="cluster-blocked"), ClassificationHead(16, 7)).eval()
    x = torch.randn(2, n_max, 3)
    with torch.no_grad():
        both = model({"x": x, "mask": AttentionMask(valid, extra={"blocks": batch_blocks(per_event, n_max)})})["logits"]
        for b, n in enumerate(lengths):
            alone = model({"x": x[b:b + 1, :n], "mask": AttentionMask(valid[b:b + 1, :n],
                                                                        extra={"blocks": per_event[b]})})["logits"]
            torch.testing.assert_close(both[b, :n], alone[0], atol=1e-5, rtol=1e-5)
