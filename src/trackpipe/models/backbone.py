"""The one encoder every model family shares: per-hit embedding + a stack of attention layers.

No positional encoding: the hits of an event are an unordered set, so the encoder is permutation
equivariant. Dropout acts on the residual branches only (not on attention probabilities), so every
attention backend computes the same function in training and evaluation.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from ..errors import ConfigError
from .attention import AttentionMask, build_attention, get_backend

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU}


class EncoderLayer(nn.Module):
    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float, norm_first: bool,
                 activation: str, attend):
        super().__init__()
        if d_model % n_heads:
            raise ConfigError(f"d_model {d_model} is not divisible by n_heads {n_heads}")
        self.n_heads = n_heads
        self.norm_first = norm_first
        self.attend = attend
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, d_ff), ACTIVATIONS[activation](), nn.Dropout(dropout),
                                nn.Linear(d_ff, d_model))
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.drop1 = nn.Dropout(dropout)
        self.drop2 = nn.Dropout(dropout)

    def _self_attention(self, x: torch.Tensor, mask: AttentionMask) -> torch.Tensor:
        B, N, D = x.shape
        q, k, v = self.qkv(x).view(B, N, 3, self.n_heads, D // self.n_heads).permute(2, 0, 3, 1, 4)
        o = self.attend(q, k, v, mask)
        return self.drop1(self.out(o.transpose(1, 2).reshape(B, N, D)))

    def forward(self, x: torch.Tensor, mask: AttentionMask) -> torch.Tensor:
        if self.norm_first:
            x = x + self._self_attention(self.norm1(x), mask)
            return x + self.drop2(self.ff(self.norm2(x)))
        x = self.norm1(x + self._self_attention(x, mask))
        return self.norm2(x + self.drop2(self.ff(x)))


class Encoder(nn.Module):
    """(batch, hits, input_dim) features -> (batch, hits, d_model) embeddings.

    attention: a backend name from `attention.BACKENDS`; attention_options go to its factory
    (e.g. {"compile": "never"} for flex).
    """

    def __init__(self, input_dim: int, *, d_model: int = 64, n_heads: int = 4, d_ff: int = 128,
                 n_layers: int = 6, dropout: float = 0.1, norm_first: bool = False, activation: str = "relu",
                 attention: str = "sdpa", attention_options: dict | None = None):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ConfigError(f"activation must be one of {sorted(ACTIVATIONS)}, not {activation!r}")
        if n_layers < 1:
            raise ConfigError(f"n_layers must be >= 1, not {n_layers}")
        self.attention = attention
        self.attention_takes_pair_bias = get_backend(attention).pair_bias
        attend = build_attention(attention, attention_options)
        self.embed = nn.Linear(input_dim, d_model)
        self.layers = nn.ModuleList(
            EncoderLayer(d_model, n_heads, d_ff, dropout, norm_first, activation, attend) for _ in range(n_layers))
        # Pre-norm stacks end un-normalised; a final norm keeps the heads' input scale stable.
        self.final_norm = nn.LayerNorm(d_model) if norm_first else nn.Identity()

    def forward(self, x: torch.Tensor, mask: AttentionMask, pair_bias: list | None = None,
                pair_values: tuple | None = None) -> torch.Tensor:
        """pair_bias: optional per bucket of the locality tables a (clusters, n_layers, heads, L, L) score
        bias; pair_values: optional (per bucket a (clusters, L, L, G) pair embedding, weights (n_layers,
        heads, G, head_dim)) (`locality.pair_bias`). Layer i gets its slices through
        ``AttentionMask.extra["pair_bias"]`` and ``["pair_values"]``."""
        if (pair_bias is not None or pair_values is not None) and not self.attention_takes_pair_bias:
            raise ConfigError(f"attention backend {self.attention!r} takes no pair bias; use cluster-blocked")
        h = self.embed(x)
        for i, layer in enumerate(self.layers):
            layer_mask = mask
            if pair_bias is not None or pair_values is not None:
                extra = dict(mask.extra)
                if pair_bias is not None:
                    extra["pair_bias"] = [b[:, i] for b in pair_bias]
                if pair_values is not None:
                    extra["pair_values"] = (pair_values[0], pair_values[1][i])
                layer_mask = replace(mask, extra=extra)
            h = layer(h, layer_mask)
        return self.final_norm(h)
