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
  FlexAttention backward, so this is the GPU-training / inference path. The tokens are padded to the
  mask's length: ``cluster_block_mask`` gives the bucketed mask (``locality.flex``), so the compiled
  kernel is built once per bucket, not once per event. Without ``blocks`` q, k, v must already be in
  token order (padded to the mask's length by ``locality.flex.flex`` if shorter).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .blocks import ClusterBlocks
from .flex import flex


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


def _bucket_tensors(blocks: ClusterBlocks, device) -> dict:
    """Index tensors of the cluster-blocked path, built once per (tables, device) and kept on the tables.

    ``buckets``: per bucket (L, hit of each padded slot (C·L,), key-padding bias (C, 1, 1, L)). The bucket
    outputs are concatenated slot-wise; ``hit_slot`` is the slot of each hit (disjoint clusters), and
    ``valid_slot``/``valid_hit`` list every real token's slot and hit (for pooling duplicated hits).
    """
    return blocks.device_cache("bucket_tensors", device, lambda: _build_bucket_tensors(blocks, device))


def _build_bucket_tensors(blocks: ClusterBlocks, device) -> dict:
    token_hit = torch.as_tensor(blocks.token_hit, device=device)
    buckets, valid_slot, valid_hit, offset = [], [], [], 0
    for L, table in blocks.buckets():
        t = torch.as_tensor(table, device=device)
        valid = t >= 0
        hit_of = token_hit[t.clamp(min=0)].reshape(-1)
        bias = torch.zeros(t.shape[0], 1, 1, L, device=device).masked_fill(~valid[:, None, None, :], float("-inf"))
        flat = torch.nonzero(valid.reshape(-1)).squeeze(1)
        buckets.append((L, hit_of, bias))
        valid_slot.append(flat + offset)
        valid_hit.append(hit_of[flat])
        offset += hit_of.numel()
    valid_slot, valid_hit = torch.cat(valid_slot), torch.cat(valid_hit)
    hit_slot = None
    if int(blocks.hit_multiplicity.max(initial=1)) == 1:
        hit_slot = torch.empty(blocks.n_hits, dtype=torch.long, device=device)
        hit_slot[valid_hit] = valid_slot
    return {"buckets": buckets, "valid_slot": valid_slot, "valid_hit": valid_hit, "hit_slot": hit_slot}


def cluster_blocked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, blocks: ClusterBlocks,
                              *, scale: float | None = None, pair_bias: list | None = None,
                              pair_values: tuple | None = None) -> torch.Tensor:
    """pair_bias: optional per bucket of the tables a (clusters, H, L, L) additive score bias (query,
    key), e.g. from `locality.pair_bias.GeometricPairBias`; the same for every event of the batch.

    pair_values: optional (per bucket a (clusters, L, L, G) pair embedding g, weight (H, G, D)): each
    query also receives its attention-weighted mean of g over its keys, projected per head,
    out_i = sum_j p_ij (v_j + W_h g_ij), so a hit learns the geometry of the pairs it attends to."""
    B, H, N, D = q.shape
    if N != blocks.n_hits:
        raise ValueError(f"q has {N} hits but the block tables were built for {blocks.n_hits}")
    tensors = _bucket_tensors(blocks, q.device)
    for name, terms in (("pair_bias", pair_bias), ("pair_values", None if pair_values is None else pair_values[0])):
        if terms is not None and len(terms) != len(tensors["buckets"]):
            raise ValueError(f"{name} has {len(terms)} buckets, the block tables {len(tensors['buckets'])}")
    qf, kf, vf = (x.reshape(B * H, N, D) for x in (q, k, v))
    outs = []
    for b, (L, hit_of, bias) in enumerate(tensors["buckets"]):
        C = bias.shape[0]

        def gather(x):  # (B·H, N, D) -> (C, B·H, L, D); the padding bias broadcasts over B·H
            return x.index_select(1, hit_of).view(B * H, C, L, D).transpose(0, 1)

        attn_mask = bias.to(q.dtype)
        if pair_bias is not None:  # (C, H, L, L), heads in the order of the B·H axis (b-major)
            attn_mask = attn_mask + pair_bias[b].to(q.dtype).repeat(1, B, 1, 1)
        if pair_values is None:
            o = F.scaled_dot_product_attention(gather(qf), gather(kf), gather(vf), attn_mask=attn_mask, scale=scale)
        else:  # the probabilities are needed twice: explicit softmax attention
            qb, kb, vb = gather(qf), gather(kf), gather(vf)
            p = torch.softmax(qb @ kb.transpose(-1, -2) * (D ** -0.5 if scale is None else scale) + attn_mask, dim=-1)
            g, weight = pair_values[0][b].to(q.dtype), pair_values[1].to(q.dtype)   # (C, L, L, G), (H, G, D)
            pg = torch.einsum("cnqk,cqkg->cnqg", p, g)                               # (C, B·H, L, G)
            o = p @ vb + torch.einsum("cbhqg,hgd->cbhqd", pg.view(C, B, H, L, -1), weight).reshape(C, B * H, L, D)
        outs.append(o.transpose(0, 1).reshape(B * H, C * L, D))
    slots = torch.cat(outs, dim=1)                                    # (B·H, padded slots, D)
    if tensors["hit_slot"] is not None:  # disjoint clusters: every hit has exactly one slot
        return slots.index_select(1, tensors["hit_slot"]).view(B, H, N, D)
    out = slots.new_zeros(B * H, N, D).index_add(1, tensors["valid_hit"], slots.index_select(1, tensors["valid_slot"]))
    mult = torch.as_tensor(blocks.hit_multiplicity, dtype=out.dtype, device=out.device)
    return (out / mult[None, :, None]).view(B, H, N, D)


def cluster_block_mask(blocks: ClusterBlocks, device):
    """The bucketed cluster BlockMask of the tables on ``device`` (built once, kept with the tables)."""
    return blocks.device_cache("block_mask", device, lambda: blocks.block_mask(device=device, bucket=True))


def flex_cluster_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block_mask, *,
                           blocks: ClusterBlocks | None = None, compiled: bool = True,
                           scale: float | None = None) -> torch.Tensor:
    if blocks is None:
        return flex(q, k, v, block_mask, compiled=compiled, scale=scale)
    if q.shape[2] != blocks.n_hits:
        raise ValueError(f"q has {q.shape[2]} hits but the block tables were built for {blocks.n_hits}")
    token_hit = blocks.device_cache("token_hit", q.device, lambda: torch.as_tensor(blocks.token_hit, device=q.device))

    def tokens(x):  # hit order -> token order, (B, H, M, D); flex pads to the mask's length
        return _unrows(_rows(x).index_select(0, token_hit), (*x.shape[:2], blocks.n_tokens, x.shape[3]))

    o = flex(tokens(q), tokens(k), tokens(v), block_mask, compiled=compiled, scale=scale)
    return _pool_rows(_rows(o), token_hit, blocks, q.shape)


def cluster_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, blocks: ClusterBlocks, *,
                      backend: str = "auto", scale: float | None = None) -> torch.Tensor:
    """Pick the execution path: ``auto`` = compiled flex on CUDA (forward and backward there), the
    cluster-blocked SDPA path on CPU (torch 2.13 has no FlexAttention backward on CPU). ``flex`` and
    ``blocked`` force one. The bucketed BlockMask is built once per device and kept with the tables."""
    if backend == "auto":
        backend = "flex" if q.is_cuda else "blocked"
    if backend == "blocked":
        return cluster_blocked_attention(q, k, v, blocks, scale=scale)
    if backend != "flex":
        raise ValueError(f"backend must be auto, flex or blocked, not {backend!r}")
    return flex_cluster_attention(q, k, v, cluster_block_mask(blocks, q.device), blocks=blocks, compiled=True,
                                  scale=scale)
