"""The analytic FLOP count against torch's FLOP counter on a tiny encoder with explicit-matmul attention."""

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from trackpipe.bench.flops import attention_pairs, encoder_arch, encoder_flops
from trackpipe.errors import ConfigError
from trackpipe.models.attention import AttentionMask
from trackpipe.models.backbone import Encoder


def explicit_attention(clusters=None):
    """Attention written as matmuls (counted by FlopCounterMode; CPU SDPA kernels are not)."""

    def attend(q, k, v, mask):
        groups = clusters if clusters is not None else [torch.arange(q.shape[2])]
        out = torch.zeros_like(q)
        for idx in groups:
            qq, kk, vv = q[:, :, idx], k[:, :, idx], v[:, :, idx]
            p = torch.softmax(qq @ kk.transpose(-1, -2) / qq.shape[-1] ** 0.5, dim=-1)
            out[:, :, idx] = p @ vv
        return out

    return attend


def counted_flops(encoder, n, attend):
    for layer in encoder.layers:
        layer.attend = attend
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        encoder(torch.randn(1, n, 3), AttentionMask(torch.ones(1, n, dtype=torch.bool)))
    return counter.get_total_flops()


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    return Encoder(3, d_model=8, n_heads=2, d_ff=12, n_layers=2, dropout=0.0).eval()


def test_dense_count_matches_flop_counter(tiny):
    arch, in_dim = encoder_arch(tiny)
    assert arch == {"d_model": 8, "n_heads": 2, "d_ff": 12, "n_layers": 2} and in_dim == 3
    assert encoder_flops(11, arch, in_dim)["total"] == counted_flops(tiny, 11, explicit_attention())


def test_cluster_count_matches_flop_counter(tiny):
    arch, in_dim = encoder_arch(tiny)
    clusters = [torch.arange(0, 4), torch.arange(4, 5), torch.arange(5, 12)]
    sizes = [len(c) for c in clusters]
    expected = counted_flops(tiny, 12, explicit_attention(clusters))
    assert encoder_flops(12, arch, in_dim, cluster_sizes=sizes)["total"] == expected
    # restricting attention removes exactly the cross-cluster pairs
    dense = encoder_flops(12, arch, in_dim)
    assert dense["attention"] - encoder_flops(12, arch, in_dim, cluster_sizes=sizes)["attention"] == \
        2 * 2 * 2 * 8 * (144 - 16 - 1 - 49)


def test_parts_by_hand():
    f = encoder_flops(10, {"d_model": 4, "n_heads": 1, "d_ff": 6, "n_layers": 1}, 3, head_outputs=5)
    assert f["embedding"] == 2 * 10 * 3 * 4
    assert f["qkv_projection"] == 2 * 10 * 4 * 12 and f["out_projection"] == 2 * 10 * 4 * 4
    assert f["attention"] == 4 * 100 * 4 and f["feedforward"] == 4 * 10 * 4 * 6 and f["head"] == 2 * 10 * 4 * 5
    assert f["total"] == sum(v for k, v in f.items() if k != "total")
    assert attention_pairs(5, np.array([2, 3])) == 13
    with pytest.raises(ConfigError):
        encoder_flops(3, {"d_model": 4}, 3)
