"""Compiled FlexAttention compiles once per length bucket, not once per event (issue 15 item 5).

The padding BlockMask path has its test beside the other flex tests (tests/models/test_attention.py)."""

import os

import numpy as np
import pytest
import torch

from trackpipe.locality.attention import cluster_blocked_attention
from trackpipe.locality.blocks import build_blocks
from trackpipe.locality.flex import bucket_blocks, bucket_length
from trackpipe.models import attention as A
from trackpipe.models.attention import AttentionMask, build_attention

def test_buckets_are_powers_of_two_of_whole_blocks():
    assert [bucket_blocks(n) for n in (0, 1, 2, 3, 4, 5, 8, 9, 1875)] == [1, 1, 2, 4, 4, 8, 8, 16, 2048]
    assert bucket_length(129, 64) == 256 and bucket_length(128, 64) == 128 and bucket_length(1, 128) == 128
    # 1 000 to 60 000 hits, 4 tokens per hit (the default overlapping windows), 128-token blocks: 7 buckets
    assert len({bucket_length(4 * n, 128) for n in range(1000, 60001, 250)}) == 7


def _graphs() -> int:
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def _fresh_compiler():
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()


def _event_tables(n: int, rng, block_size: int):
    """Clusters of ~12 hits with 10 % of the hits duplicated into a second cluster (overlapping windows)."""
    extra = rng.choice(n, n // 10, replace=False)
    idx = np.concatenate([np.arange(n), extra])
    cl = rng.integers(0, n // 12, len(idx))
    return build_blocks(idx, cl, n, {"block_size": block_size})


@pytest.mark.compile
@pytest.mark.skipif(not A.compiler_available("cpu"), reason="torch.compile has no C++ compiler on this machine")
@pytest.mark.skipif(os.environ.get("TRACKPIPE_SKIP_COMPILE_TESTS") == "1", reason="TRACKPIPE_SKIP_COMPILE_TESTS=1")
def test_cluster_block_mask_path_compiles_once_per_bucket():
    """Ten events of ten sizes through the flex backend with cluster tables (the locality model's path):
    as many compiled graphs as length buckets (2), and the same output as the cluster-blocked SDPA path."""
    rng = np.random.default_rng(0)
    fn = build_attention("flex", {"compile": "always"})
    _fresh_compiler()
    buckets, sizes = set(), np.linspace(140, 440, 10).astype(int)
    for n in sizes:
        blocks = _event_tables(int(n), rng, block_size=64)
        buckets.add(bucket_blocks(blocks.n_blocks))
        q, k, v = (torch.randn(1, 2, int(n), 16) for _ in range(3))
        with torch.no_grad():
            out = fn(q, k, v, AttentionMask(torch.ones(1, int(n), dtype=torch.bool), extra={"blocks": blocks}))
        assert (out - cluster_blocked_attention(q, k, v, blocks)).abs().max() <= 1e-5
    assert len(set(sizes)) == 10 and buckets == {4, 8}
    assert _graphs() == len(buckets)


@pytest.mark.compile
@pytest.mark.skipif(not A.compiler_available("cpu"), reason="torch.compile has no C++ compiler on this machine")
@pytest.mark.skipif(os.environ.get("TRACKPIPE_SKIP_COMPILE_TESTS") == "1", reason="TRACKPIPE_SKIP_COMPILE_TESTS=1")
def test_running_past_the_recompile_limit_fails_loudly(monkeypatch):
    """Past the limit torch would silently run eager flex (an N² score matrix); here it raises instead."""
    from trackpipe.locality import flex as flex_module

    monkeypatch.setattr(flex_module, "RECOMPILE_LIMIT", 1)
    rng = np.random.default_rng(1)
    fn = build_attention("flex", {"compile": "always"})
    _fresh_compiler()
    for i, n in enumerate((150, 400)):  # buckets of 4 and 8 blocks of 64 tokens
        blocks = _event_tables(n, rng, block_size=64)
        q, k, v = (torch.randn(1, 2, n, 16) for _ in range(3))
        mask = AttentionMask(torch.ones(1, n, dtype=torch.bool), extra={"blocks": blocks})
        with torch.no_grad():
            if i == 0:
                fn(q, k, v, mask)
            else:
                with pytest.raises(Exception, match="(?i)recompile"):
                    fn(q, k, v, mask)
    _fresh_compiler()
