"""Cluster-restricted attention: hits attend only to hits of the same locality cluster.

Two execution paths with the same result; q, k, v are (batch, heads, N, head_dim) in **hit order** and the
output is too. A hit in several clusters (one token per cluster, see ``blocks``) gets the mean of its tokens'
outputs.

* ``cluster_blocked_attention(q, k, v, blocks)``: gathers each bucket of clusters into a padded
  (clusters, L) batch and runs ``scaled_dot_product_attention`` with a key-padding mask. Works on CPU and
  GPU, forward and backward, no compiler: the CPU training path.
* ``flex_cluster_attention(q, k, v, block_mask, blocks=...)``: FlexAttention over the cluster-sorted token
  sequence with the ``BlockMask`` from ``ClusterBlocks.block_mask()``. ``compiled=True`` (default) runs it
  under ``torch.compile`` (eager flex materialises the full score matrix); on CPU, torch 2.13 has no
  FlexAttention backward, so this is the GPU-training / inference path. Without ``blocks`` q, k, v must
  already be in padded token order (length = block_mask.seq_lengths).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from .blocks import ClusterBlocks


def _pool(values: torch.Tensor, hits: torch.Tensor, blocks: ClusterBlocks, like: torch.Tensor) -> torch.Tensor:
    """Scatter token outputs (B, H, M, D) back to hits, averaging duplicated hits."""
    out = like.new_zeros(like.shape).index_add(2, hits, values)
    if int(blocks.hit_multiplicity.max(initial=1)) > 1:
        mult = torch.as_tensor(blocks.hit_multiplicity, dtype=out.dtype, device=out.device)
        out = out / mult[:, None]
    return out


def cluster_blocked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, blocks: ClusterBlocks,
                              *, scale: float | None = None) -> torch.Tensor:
    B, H, N, D = q.shape
    if N != blocks.n_hits:
        raise ValueError(f"q has {N} hits but the block tables were built for {blocks.n_hits}")
    token_hit = torch.as_tensor(blocks.token_hit, device=q.device)
    outs, hits = [], []
    for L, table in blocks.buckets():
        t = torch.as_tensor(table, device=q.device)               # (C, L) token positions, -1 = pad
        valid = t >= 0
        hit_of = token_hit[t.clamp(min=0)]                         # (C, L) hit indices
        C = t.shape[0]

        def gather(x):  # (B, H, N, D) -> (B·C, H, L, D)
            return x[:, :, hit_of].permute(0, 2, 1, 3, 4).reshape(B * C, H, L, D)

        bias = torch.zeros(C, 1, 1, L, dtype=q.dtype, device=q.device).masked_fill(~valid[:, None, None, :], float("-inf"))
        o = F.scaled_dot_product_attention(gather(q), gather(k), gather(v), attn_mask=bias.repeat(B, 1, 1, 1), scale=scale)
        o = o.reshape(B, C, H, L, D).permute(0, 2, 1, 3, 4)        # (B, H, C, L, D)
        outs.append(o[:, :, valid])                                # (B, H, n_valid, D)
        hits.append(hit_of[valid])
    return _pool(torch.cat(outs, dim=2), torch.cat(hits), blocks, q)


@functools.cache
def _compiled_flex():
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=False)


def flex_cluster_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block_mask, *,
                           blocks: ClusterBlocks | None = None, compiled: bool = True,
                           scale: float | None = None) -> torch.Tensor:
    from torch.nn.attention.flex_attention import flex_attention

    fn = _compiled_flex() if compiled else flex_attention
    if blocks is None:
        return fn(q, k, v, block_mask=block_mask, scale=scale)
    if q.shape[2] != blocks.n_hits:
        raise ValueError(f"q has {q.shape[2]} hits but the block tables were built for {blocks.n_hits}")
    token_hit = torch.as_tensor(blocks.token_hit, device=q.device)
    pad = blocks.n_blocks * blocks.block_size - blocks.n_tokens

    def tokens(x):
        return F.pad(x[:, :, token_hit], (0, 0, 0, pad))

    o = fn(tokens(q), tokens(k), tokens(v), block_mask=block_mask, scale=scale)
    return _pool(o[:, :, :blocks.n_tokens], token_hit, blocks, q)
