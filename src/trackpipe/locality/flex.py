"""The one FlexAttention call of the project, compiled a bounded number of times.

``torch.compile(flex_attention, dynamic=False)`` specialises its graph on the sequence length. Events have
a new length each, so compiling at the exact length recompiles on every event until torch's recompile
limit (8) is hit, after which the calls silently run eager flex, which materialises the full score matrix.
Here every sequence is padded to a **bucket**: a power of two of ``block_size`` blocks
(``bucket_blocks``), so events from 1 000 to 60 000 hits use a handful of lengths and the compiled graphs
are at most the number of buckets (per batch size, heads, head dim and dtype). The padding costs no
attention work: padded query blocks get no key blocks in the masks built for buckets
(``ClusterBlocks.block_mask(bucket=True)``, ``models.attention.padding_block_mask(length=...)``), so the
kernel skips them, and padded keys are never visited.

Compiled calls run with torch's recompile limit raised to ``RECOMPILE_LIMIT`` (the buckets, times batch
sizes and dtypes, may exceed the default 8) and ``fail_on_recompile_limit_hit``: running past the limit
then raises instead of silently falling back to eager flex and its N² score matrix.

Both masks' ``mask_mod`` closures capture tensors only (cluster ids, key validity): tensors are graph
inputs, while captured Python numbers would become guarded constants and force recompiles.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F


RECOMPILE_LIMIT = 64


def bucket_blocks(n_blocks: int) -> int:
    """Smallest power of two >= n_blocks (at least 1): the padded number of blocks of a sequence."""
    n_blocks = max(int(n_blocks), 1)
    return 1 << (n_blocks - 1).bit_length()


def bucket_length(n: int, block_size: int) -> int:
    """Padded sequence length of n tokens: a bucket of whole blocks."""
    return bucket_blocks(-(-int(n) // int(block_size))) * int(block_size)


@functools.cache
def compiled_flex():
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=False)


def flex(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block_mask, *, compiled: bool,
         scale: float | None = None) -> torch.Tensor:
    """FlexAttention of q, k, v (batch, heads, N, dim) with ``block_mask``.

    When the mask is longer than N (a bucket), the inputs are zero-padded to its length and the output
    cut back to N; the padded positions must be masked out by ``block_mask`` as keys.
    """
    from torch.nn.attention.flex_attention import flex_attention

    n, length = q.shape[2], int(block_mask.seq_lengths[0])
    if length < n:
        raise ValueError(f"the BlockMask covers {length} positions but the sequence has {n}")
    if length > n:
        pad = (0, 0, 0, length - n)
        q, k, v = F.pad(q, pad), F.pad(k, pad), F.pad(v, pad)
    if not compiled:
        return flex_attention(q, k, v, block_mask=block_mask, scale=scale)[:, :, :n]
    with torch._dynamo.config.patch(recompile_limit=RECOMPILE_LIMIT, fail_on_recompile_limit_hit=True):
        return compiled_flex()(q, k, v, block_mask=block_mask, scale=scale)[:, :, :n]
