"""Cluster-restricted attention: both execution paths agree with dense masked SDPA (forward, backward)."""

import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from trackpipe.locality.attention import cluster_blocked_attention, flex_cluster_attention
from trackpipe.locality.blocks import build_blocks

# eager flex warns that it materialises the score matrix: intended here (tiny N)
pytestmark = pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")


def _setup(n=300, n_clusters=25, heads=3, dim=8, batch=2, dtype=torch.float32, seed=0):
    rng = np.random.default_rng(seed)
    # uneven cluster sizes (1 .. ~60) so that several buckets are used
    cl = np.minimum(rng.geometric(1 / 12, n), n_clusters * 3)
    b = build_blocks(np.arange(n), cl, n, {"block_size": 32})
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(batch, heads, n, dim, generator=g, dtype=dtype) for _ in range(3))
    mask = torch.as_tensor(cl[:, None] == cl[None, :])
    return b, q, k, v, mask


def test_cluster_blocked_matches_dense_masked_sdpa():
    b, q, k, v, mask = _setup()
    assert len(b.bucket_length) >= 3
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    out = cluster_blocked_attention(q, k, v, b)
    assert out.shape == q.shape
    assert (out - ref).abs().max() <= 1e-5


def test_cluster_blocked_backward_matches_dense_gradients():
    b, q, k, v, mask = _setup(n=200, dtype=torch.float64, seed=1)
    w = torch.randn_like(q)
    grads = []
    for fn in (lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=mask),
               lambda q, k, v: cluster_blocked_attention(q, k, v, b)):
        qq, kk, vv = (t.clone().requires_grad_(True) for t in (q, k, v))
        (fn(qq, kk, vv) * w).sum().backward()
        grads.append((qq.grad, kk.grad, vv.grad))
    for g_ref, g in zip(*grads):
        assert (g - g_ref).abs().max() <= 1e-10


def test_overlapping_clusters_average_the_duplicated_hits():
    """Rule: a hit in several clusters attends within each; its output is the mean over its clusters."""
    rng = np.random.default_rng(4)
    n = 120
    idx = np.concatenate([np.arange(n), rng.choice(n, 40, replace=False)])
    cl = np.concatenate([rng.integers(0, 10, n), rng.integers(10, 14, 40)])
    b = build_blocks(idx, cl, n, {"block_size": 16})
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(1, 2, n, 4, generator=g, dtype=torch.float64) for _ in range(3))
    # reference: loop over clusters, dense attention inside each, average per hit
    ref = torch.zeros_like(q)
    for c in np.unique(cl):
        members = torch.as_tensor(idx[cl == c])
        o = F.scaled_dot_product_attention(q[:, :, members], k[:, :, members], v[:, :, members])
        ref[:, :, members] += o
    ref /= torch.as_tensor(np.bincount(idx, minlength=n), dtype=ref.dtype)[:, None]
    assert (cluster_blocked_attention(q, k, v, b) - ref).abs().max() <= 1e-10
    bm = b.block_mask()
    out = flex_cluster_attention(q.float(), k.float(), v.float(), bm, blocks=b, compiled=False)
    assert (out - ref.float()).abs().max() <= 1e-5


def test_flex_eager_tiny_n_matches_dense_masked_sdpa():
    """EAGER FlexAttention (unfused, O(N²) memory: for tiny N only) with the from_kv_blocks BlockMask."""
    b, q, k, v, mask = _setup(n=150, seed=2)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    out = flex_cluster_attention(q, k, v, b.block_mask(), blocks=b, compiled=False)
    assert (out - ref).abs().max() <= 1e-5


@pytest.mark.slow
def test_flex_compiled_tiny_n_matches_dense_masked_sdpa():
    """torch.compile'd FlexAttention, forward only (no CPU backward in torch 2.13). Cold compile ~15 s here."""
    b, q, k, v, mask = _setup(n=150, seed=3)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    t0 = time.perf_counter()
    with torch.no_grad():
        out = flex_cluster_attention(q, k, v, b.block_mask(), blocks=b, compiled=True)
    assert time.perf_counter() - t0 < 120
    assert (out - ref).abs().max() <= 1e-5


def test_wrong_hit_count_is_rejected():
    b, q, k, v, _ = _setup(n=50)
    with pytest.raises(ValueError, match="50"):
        cluster_blocked_attention(q[:, :, :40], k[:, :, :40], v[:, :, :40], b)


def test_auto_backend_on_cpu_is_the_trainable_blocked_path():
    from trackpipe.locality.attention import cluster_attention

    b, q, k, v, mask = _setup(n=100, seed=5)
    q.requires_grad_(True)
    out = cluster_attention(q, k, v, b)
    assert (out - F.scaled_dot_product_attention(q, k, v, attn_mask=mask)).abs().max() <= 1e-5
    out.sum().backward()  # flex would raise NotImplementedError here on CPU
    assert q.grad is not None and torch.isfinite(q.grad).all()
    with pytest.raises(ValueError, match="backend"):
        cluster_attention(q, k, v, b, backend="dense")


def test_default_overlapping_windows_of_a_real_event_match_dense_attention(trackml_event):
    """The default neighbourhoods (grid windows overlapping by half on both axes: every hit in 4 windows)
    through both backends against a dense reference: each (hit, window) token attends densely to the
    window's hits, a hit's output is the mean over its windows."""
    from trackpipe.locality.events import pixel_hits
    from trackpipe.locality.pipeline import cluster_event

    hits = pixel_hits(trackml_event.hits)
    hits = hits[np.abs(np.arctan2(hits.y, hits.x)) < 0.8].reset_index(drop=True)  # a slice keeps N small
    r = cluster_event(hits, "grid_window", event=1)
    b = build_blocks(r.hit_index, r.cluster_id, r.n_hits, {"block_size": 64})
    n = r.n_hits
    assert np.bincount(b.hit_multiplicity).argmax() == 4 and b.n_tokens > 3 * n
    member = torch.zeros(r.n_clusters, n, dtype=torch.bool)
    member[torch.as_tensor(r.cluster_id), torch.as_tensor(r.hit_index)] = True
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(1, 2, n, 8, generator=g, dtype=torch.float64) for _ in range(3))
    th = torch.as_tensor(b.token_hit)
    per_token = F.scaled_dot_product_attention(q[:, :, th], k, v, attn_mask=member[torch.as_tensor(b.token_cluster)])
    ref = torch.zeros_like(q).index_add(2, th, per_token) / torch.as_tensor(b.hit_multiplicity, dtype=q.dtype)[:, None]
    assert (cluster_blocked_attention(q, k, v, b) - ref).abs().max() <= 1e-10
    out = flex_cluster_attention(q.float(), k.float(), v.float(), b.block_mask(), blocks=b, compiled=False)
    assert (out - ref.float()).abs().max() <= 1e-5
