"""Every attention backend against a dense masked-softmax reference, on random inputs with padding."""

from __future__ import annotations

import logging
import os

import pytest
import torch

from trackpipe.errors import ConfigError
from trackpipe.models import attention as A
from trackpipe.models.attention import AttentionMask, build_attention, padding_block_mask


def dense_reference(q, k, v, valid):
    """softmax(q k^T / sqrt(d)) v with padded keys removed, written out explicitly."""
    scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    scores = scores.masked_fill(~valid[:, None, None, :], float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def random_qkv(lengths, heads=2, dim=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    B, N = len(lengths), max(lengths)
    q, k, v = (torch.randn(B, heads, N, dim, generator=g) for _ in range(3))
    valid = torch.arange(N)[None, :] < torch.tensor(lengths)[:, None]
    return q, k, v, valid


def assert_valid_rows_close(out, ref, valid, atol=1e-5):
    for b in range(valid.shape[0]):
        n = int(valid[b].sum())
        torch.testing.assert_close(out[b, :, :n], ref[b, :, :n], atol=atol, rtol=1e-5)


LENGTHS = [37, 20, 5]


def test_sdpa_matches_dense_reference_with_padding():
    q, k, v, valid = random_qkv(LENGTHS)
    out = build_attention("sdpa")(q, k, v, AttentionMask(valid))
    assert_valid_rows_close(out, dense_reference(q, k, v, valid), valid)


def test_padding_changes_nothing_for_real_hits():
    # Garbage in the padded keys/values must not reach the real hits' outputs.
    q, k, v, valid = random_qkv(LENGTHS)
    k2, v2 = k.clone(), v.clone()
    k2[~valid[:, None, :, None].expand_as(k)] = 1e3
    v2[~valid[:, None, :, None].expand_as(v)] = -1e3
    for name in ("sdpa", "flash"):
        fn = build_attention(name)
        assert_valid_rows_close(fn(q, k2, v2, AttentionMask(valid)), fn(q, k, v, AttentionMask(valid)), valid)


def test_flash_falls_back_to_sdpa_on_cpu_with_one_notice(caplog):
    A._notice_once.cache_clear()
    q, k, v, valid = random_qkv(LENGTHS)
    fn = build_attention("flash")
    with caplog.at_level(logging.WARNING, logger="trackpipe.models.attention"):
        out = fn(q, k, v, AttentionMask(valid))
        fn(q, k, v, AttentionMask(valid))
    assert_valid_rows_close(out, dense_reference(q, k, v, valid), valid)
    notices = [r for r in caplog.records if "flash attention needs CUDA" in r.getMessage()]
    assert len(notices) == 1


def test_flash_per_event_path_matches_dense():
    # The CUDA flash path runs one unmasked call per event on its valid prefix; check that logic on CPU.
    q, k, v, valid = random_qkv(LENGTHS)
    call = lambda qq, kk, vv: torch.nn.functional.scaled_dot_product_attention(qq, kk, vv)  # noqa: E731
    out = A.per_event_unpadded(q, k, v, AttentionMask(valid), call)
    assert_valid_rows_close(out, dense_reference(q, k, v, valid), valid)
    assert (out[2, :, 5:] == 0).all()
    holes = valid.clone()
    holes[0, 3] = False  # padding not at the end
    with pytest.raises(ValueError, match="padding at the end"):
        A.per_event_unpadded(q, k, v, AttentionMask(holes), call)


def test_padding_block_mask_tables():
    valid = torch.arange(37)[None, :] < torch.tensor([37, 20, 5])[:, None]
    bm = padding_block_mask(valid, block_size=8)
    dense = bm.to_dense()[:, 0]  # (B, q_blocks, kv_blocks): 1 where a block is visited
    n_blocks = torch.tensor([5, 3, 1])  # ceil(len / 8)
    real = torch.arange(5)[None, :] < n_blocks[:, None]
    # real query blocks visit the real key blocks; query blocks of padding visit nothing
    expected = real[:, :, None] & real[:, None, :]
    assert torch.equal(dense.bool(), expected)
    # padded to a bucket of 8 blocks: the extra blocks are skipped as queries and as keys
    bucket = padding_block_mask(valid, block_size=8, length=64)
    assert bucket.seq_lengths == (64, 64)
    assert torch.equal(bucket.to_dense()[:, 0].bool()[:, :5, :5], expected)
    assert not bucket.to_dense()[:, 0, 5:].any() and not bucket.to_dense()[:, 0, :, 5:].any()
    with pytest.raises(ValueError, match="shorter"):
        padding_block_mask(valid, block_size=8, length=30)


def test_flex_eager_matches_dense_reference_small():
    q, k, v, valid = random_qkv(LENGTHS)
    fn = build_attention("flex", {"compile": "never", "block_size": 16})
    with torch.no_grad():
        out = fn(q, k, v, AttentionMask(valid))
    assert_valid_rows_close(out, dense_reference(q, k, v, valid), valid)


def test_flex_uses_a_given_block_mask():
    # A caller-supplied BlockMask (the locality work's cluster masks) replaces the padding mask.
    from torch.nn.attention.flex_attention import create_block_mask

    q, k, v, valid = random_qkv([24, 24])
    cluster = torch.arange(24) // 6

    def same_cluster(b, h, qi, ki):
        return cluster[qi] == cluster[ki]

    bm = create_block_mask(same_cluster, 2, None, 24, 24, device="cpu", BLOCK_SIZE=8)
    with torch.no_grad():
        out = build_attention("flex", {"compile": "never"})(q, k, v, AttentionMask(valid, block_mask=bm))
    scores = (q @ k.transpose(-1, -2)) / 8**0.5
    scores = scores.masked_fill(cluster[:, None] != cluster[None, :], float("-inf"))
    torch.testing.assert_close(out, torch.softmax(scores, -1) @ v, atol=1e-5, rtol=1e-5)


def test_flex_refuses_backward_on_cpu():
    q, k, v, valid = random_qkv([6, 4])
    q.requires_grad_(True)
    with pytest.raises(ConfigError, match="no backward on CPU"):
        build_attention("flex", {"compile": "never"})(q, k, v, AttentionMask(valid))


@pytest.mark.compile
@pytest.mark.skipif(not A.compiler_available("cpu"), reason="torch.compile has no C++ compiler on this machine")
@pytest.mark.skipif(os.environ.get("TRACKPIPE_SKIP_COMPILE_TESTS") == "1",
                    reason="TRACKPIPE_SKIP_COMPILE_TESTS=1 (compiling flex costs ~10 s here, up to ~30 s cold)")
def test_flex_compiled_matches_dense_reference():
    q, k, v, valid = random_qkv([130, 70], dim=16)
    with torch.no_grad():
        out = build_attention("flex", {"compile": "always"})(q, k, v, AttentionMask(valid))
    assert_valid_rows_close(out, dense_reference(q, k, v, valid), valid, atol=1e-4)


@pytest.mark.compile
@pytest.mark.skipif(not A.compiler_available("cpu"), reason="torch.compile has no C++ compiler on this machine")
@pytest.mark.skipif(os.environ.get("TRACKPIPE_SKIP_COMPILE_TESTS") == "1", reason="TRACKPIPE_SKIP_COMPILE_TESTS=1")
def test_padding_block_mask_path_compiles_once_per_bucket():
    """Ten padded batches of ten lengths through the flex backend's padding BlockMask: one graph per bucket."""
    import numpy as np
    from torch._dynamo.utils import counters

    from trackpipe.locality.flex import bucket_length

    fn = build_attention("flex", {"compile": "always", "block_size": 64})
    torch._dynamo.reset()
    counters.clear()
    buckets = set()
    for i, n in enumerate(np.linspace(70, 250, 10).astype(int)):
        q, k, v, valid = random_qkv([int(n), int(n) // 2], dim=16, seed=i)
        buckets.add(bucket_length(int(n), 64))
        with torch.no_grad():
            out = fn(q, k, v, AttentionMask(valid))
        assert out.shape == q.shape
        assert_valid_rows_close(out, dense_reference(q, k, v, valid), valid, atol=1e-4)
    assert buckets == {128, 256}
    assert int(counters["stats"]["unique_graphs"]) == len(buckets)


def test_backend_table_and_hook():
    assert {"sdpa", "flash", "flex"} <= set(A.BACKENDS)
    assert not A.BACKENDS["flex"].backward_on_cpu and A.BACKENDS["flex"].custom_masks
    assert A.BACKENDS["flash"].needs_cuda
    with pytest.raises(ConfigError, match="unknown attention backend"):
        build_attention("no-such-backend")
    with pytest.raises(ConfigError, match="already registered"):
        A.register_backend(A.BACKENDS["sdpa"])


def test_resolved_attention_names_what_runs():
    """The text predict records (timing.csv `attention`), from the backends' own dispatch rules."""
    from trackpipe.models.attention import FALLBACK, resolved_attention, runs_flash

    cpu = resolved_attention("flash", None, "cpu", torch.float32)
    assert cpu.startswith("sdpa fp32") and FALLBACK in cpu  # EncReg-FA on a CPU computes EncReg
    assert resolved_attention("flash", None, "cuda", torch.bfloat16) == "flash bf16"
    assert FALLBACK in resolved_attention("flash", None, "cuda", torch.float32)  # no half precision
    assert runs_flash("cuda", torch.float16) and not runs_flash("cpu", torch.bfloat16)
    assert resolved_attention("cluster-blocked", {}, "cpu", torch.float32) == "cluster-blocked fp32"
    assert resolved_attention("cluster-blocked", {"on_cuda": "blocked"}, "cuda", torch.bfloat16) == \
        "cluster-blocked bf16"
    assert resolved_attention("sdpa", None, "cpu", torch.float32) == "sdpa fp32"
