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


def _rows(x: torch.Tensor) -> torch.Tensor:
    """(B, H, N, D) -> (N, B·H·D): one row per hit, so gathers are contiguous row copies."""
    B, H, N, D = x.shape
    return x.permute(2, 0, 1, 3).reshape(N, B * H * D)


def _unrows(rows: torch.Tensor, shape) -> torch.Tensor:
    B, H, N, D = shape
    return rows.reshape(N, B, H, D).permute(1, 2, 0, 3)


def _pool_rows(token_rows: torch.Tensor, hits: torch.Tensor, blocks: ClusterBlocks, shape) -> torch.Tensor:
    """Scatter token rows (M, B·H·D) back to hits (B, H, N, D), averaging duplicated hits."""
    out = token_rows.new_zeros(shape[2], token_rows.shape[1]).index_add(0, hits, token_rows)
    if int(blocks.hit_multiplicity.max(initial=1)) > 1:
        mult = torch.as_tensor(blocks.hit_multiplicity, dtype=out.dtype, device=out.device)
        out = out / mult[:, None]
    return _unrows(out, shape)


def _bucket_tensors(blocks: ClusterBlocks, device) -> list:
    """Per bucket: (L, flat hit index (C·L,), key-padding bias (C, 1, 1, L), flat valid positions, their hits).

    Built once per (tables, device) and kept on the tables object, so training epochs reuse them.
    """
    cache = blocks.__dict__.setdefault("_torch_buckets", {})
    key = str(device)
    if key not in cache:
        token_hit = torch.as_tensor(blocks.token_hit, device=device)
        out = []
        for L, table in blocks.buckets():
            t = torch.as_tensor(table, device=device)
            valid = t >= 0
            hit_of = token_hit[t.clamp(min=0)].reshape(-1)
            bias = torch.zeros(t.shape[0], 1, 1, L, device=device).masked_fill(~valid[:, None, None, :], float("-inf"))
            flat = torch.nonzero(valid.reshape(-1)).squeeze(1)
            out.append((L, hit_of, bias, flat, hit_of[flat]))
        cache[key] = out
    return cache[key]


def cluster_blocked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, blocks: ClusterBlocks,
                              *, scale: float | None = None) -> torch.Tensor:
    B, H, N, D = q.shape
    if N != blocks.n_hits:
        raise ValueError(f"q has {N} hits but the block tables were built for {blocks.n_hits}")
    qkv = torch.stack([q, k, v]).permute(3, 0, 1, 2, 4).reshape(N, 3 * B * H * D)  # one row per hit
    outs, hits = [], []
    for L, hit_of, bias, flat, flat_hits in _bucket_tensors(blocks, q.device):
        C = bias.shape[0]
        x = qkv.index_select(0, hit_of).reshape(C, L, 3, B, H, D).permute(2, 3, 0, 4, 1, 5).reshape(3, B * C, H, L, D)
        mask = bias.to(q.dtype)
        if B > 1:
            mask = mask.repeat(B, 1, 1, 1)
        o = F.scaled_dot_product_attention(x[0], x[1], x[2], attn_mask=mask, scale=scale)   # (B·C, H, L, D)
        o = o.reshape(B, C, H, L, D).permute(1, 3, 0, 2, 4).reshape(C * L, B * H * D)
        outs.append(o.index_select(0, flat))
        hits.append(flat_hits)
    rows = torch.cat(outs)
    order = _token_to_hit_order(blocks, hits)
    if order is not None:  # disjoint clusters: a permutation, gathered instead of scattered (faster on CPU)
        return _unrows(rows.index_select(0, order), q.shape)
    return _pool_rows(rows, torch.cat(hits), blocks, q.shape)


def _token_to_hit_order(blocks: ClusterBlocks, hits: list):
    """For disjoint clusters, the row of each hit in the concatenated bucket outputs (cached); else None."""
    if int(blocks.hit_multiplicity.max(initial=1)) > 1:
        return None
    cache = blocks.__dict__.setdefault("_torch_inverse", {})
    key = str(hits[0].device) if hits else "cpu"
    if key not in cache:
        cache[key] = torch.argsort(torch.cat(hits))
    return cache[key]


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

    def tokens(x):  # hit order -> padded token order, (B, H, M_pad, D)
        return F.pad(_unrows(_rows(x).index_select(0, token_hit), (*x.shape[:2], blocks.n_tokens, x.shape[3])),
                     (0, 0, 0, pad))

    o = fn(tokens(q), tokens(k), tokens(v), block_mask=block_mask, scale=scale)
    return _pool_rows(_rows(o[:, :, :blocks.n_tokens]), token_hit, blocks, q.shape)


def cluster_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, blocks: ClusterBlocks, *,
                      backend: str = "auto", scale: float | None = None) -> torch.Tensor:
    """Pick the execution path: ``auto`` = compiled flex on CUDA (forward and backward there), the
    cluster-blocked SDPA path on CPU (torch 2.13 has no FlexAttention backward on CPU). ``flex`` and
    ``blocked`` force one. The BlockMask is built once per device and kept on the tables object."""
    if backend == "auto":
        backend = "flex" if q.is_cuda else "blocked"
    if backend == "blocked":
        return cluster_blocked_attention(q, k, v, blocks, scale=scale)
    if backend != "flex":
        raise ValueError(f"backend must be auto, flex or blocked, not {backend!r}")
    masks = blocks.__dict__.setdefault("_block_masks", {})
    key = str(q.device)
    if key not in masks:
        masks[key] = blocks.block_mask(device=q.device)
    return flex_cluster_attention(q, k, v, masks[key], blocks=blocks, compiled=True, scale=scale)
