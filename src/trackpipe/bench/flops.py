"""Analytic FLOP count of one encoder forward (batch 1): the numerator of the achieved GFLOP/s.

Counted (multiply-add = 2 FLOPs): the input embedding, per layer the QKV and output projections, the
attention scores Q·Kᵀ and the weighted sum P·V, the two feed-forward matmuls, and optionally the head's
projection. Attention work is proportional to the number of (query, key) pairs: N² for dense attention,
Σ sizes² for cluster-restricted attention (the pairs inside each cluster; the padding the blocked kernel
adds is overhead, not useful work). Elementwise work (softmax, layer norm, bias, activation) is not counted:
it is O(N·d) and memory-bound, like the convention of matmul-based FLOP counters.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError

ARCH_KEYS = ("d_model", "n_heads", "d_ff", "n_layers")


def attention_pairs(n_hits: int, cluster_sizes=None) -> int:
    """(query, key) pairs attended: N² dense, or the sum of squared cluster sizes (one token per membership)."""
    if cluster_sizes is None:
        return int(n_hits) ** 2
    sizes = np.asarray(cluster_sizes, np.int64)
    if (sizes < 0).any():
        raise ConfigError("cluster sizes must be non-negative")
    return int((sizes ** 2).sum())


def encoder_flops(n_hits: int, arch: dict, input_dim: int, *, cluster_sizes=None, head_outputs: int = 0) -> dict:
    """FLOPs per part and ``total`` for an encoder of `arch` (d_model, n_heads, d_ff, n_layers) on N hits.

    With `cluster_sizes`, attention is restricted to clusters; tokens = sum of sizes (a hit in several
    clusters is one token per cluster, as in ``trackpipe.locality.blocks``) for the attention part only.
    """
    missing = [k for k in ARCH_KEYS if k not in arch]
    if missing:
        raise ConfigError(f"architecture lacks {missing} for the FLOP count")
    n, d, f, layers = int(n_hits), int(arch["d_model"]), int(arch["d_ff"]), int(arch["n_layers"])
    pairs = attention_pairs(n, cluster_sizes)
    parts = {
        "embedding": 2 * n * int(input_dim) * d,
        "qkv_projection": layers * 2 * n * d * 3 * d,
        "out_projection": layers * 2 * n * d * d,
        # per head 2·pairs·head_dim for Q·Kᵀ and again for P·V; summed over heads head_dim -> d_model
        "attention": layers * 2 * 2 * pairs * d,
        "feedforward": layers * 2 * 2 * n * d * f,
        "head": 2 * n * d * int(head_outputs),
    }
    parts["total"] = sum(parts.values())
    return parts


def encoder_arch(encoder) -> tuple[dict, int]:
    """(arch, input_dim) read off a ``trackpipe.models.backbone.Encoder`` instance."""
    layer = encoder.layers[0]
    arch = {"d_model": encoder.embed.out_features, "n_heads": layer.n_heads, "d_ff": layer.ff[0].out_features,
            "n_layers": len(encoder.layers)}
    return arch, encoder.embed.in_features


def model_flops(model, n_hits: int) -> int:
    """Forward FLOPs of an encoder-family model (``models.heads``) on one event of `n_hits` hits: each of its
    encoders with its head's projection (EncCla / EncReg: one; JM: the regressor and the classifier, whose
    input width includes the regressor's outputs)."""
    from ..models.heads import EncoderModel, JointModel

    if isinstance(model, JointModel):
        return model_flops(model.regressor, n_hits) + model_flops(model.classifier, n_hits)
    if not isinstance(model, EncoderModel):
        raise ConfigError(f"no FLOP count for {type(model).__name__}: only the encoder families (EncoderModel, "
                          "JointModel)")
    arch, input_dim = encoder_arch(model.encoder)
    return encoder_flops(n_hits, arch, input_dim, head_outputs=model.head.proj.out_features)["total"]
