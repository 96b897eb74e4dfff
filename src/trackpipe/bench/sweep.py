"""Where the encoder forward gets relative to the matmul rate as the model widens.

At d_model = 64 (head dim 16) most FLOPs are small matmuls and the attention kernel, and the elementwise
work (softmax, layer norm, activation, and for cluster-blocked attention the gathers into cluster
batches) is memory-bound; wider models raise the arithmetic intensity. ``width_sweep`` times the bare
encoder forward (fresh weights, batch 1) for each d_model at a fixed number of hits, dense and, given
locality block tables, cluster-restricted; d_ff = 2·d_model, 4 heads, as the default architecture.
"""

from __future__ import annotations

import numpy as np
import torch

from ..models.attention import AttentionMask
from ..models.backbone import Encoder
from .flops import encoder_flops
from .hardware import MatmulReference
from .measure import summarise, time_call


def _forward_rate(encoder, x, mask, flops: int, repeats: int, reference: MatmulReference) -> dict:
    """Forward rate and the matmul rate timed in the same rounds (one reference matmul per round)."""
    def call():
        with torch.inference_mode():
            encoder(x, mask)

    call()
    reference.times = []
    times = []
    for _ in range(repeats):
        reference.time_once()
        times.extend(time_call(call, repeats=1, warmup=0))
    ms = summarise(times)["median"]
    gflops = flops / (ms * 1e-3) / 1e9
    ref = reference.gflops()
    return {"ms_median": ms, "gflop": flops / 1e9, "gflops": gflops, "ref_gflops": ref, "frac_peak": gflops / ref}


def width_sweep(n_hits: int, d_models=(64, 128, 256), *, n_layers: int = 2, repeats: int = 3, blocks=None,
                seed: int = 0) -> list[dict]:
    """Rows {attention, d_model, n_hits, ms_median, gflop, gflops, ref_gflops, frac_peak} (dense; and blocked if `blocks` given,
    in which case the number of hits is the one the blocks were built for)."""
    gen = torch.Generator().manual_seed(seed)
    reference = MatmulReference(1024, seed=seed)
    reference()
    rows = []
    cases = [("dense", int(n_hits), None)]
    if blocks is not None:
        cases.append(("cluster-blocked", int(blocks.n_hits), blocks))
    for attention, n, blk in cases:
        x = torch.randn(1, n, 3, generator=gen)
        mask = AttentionMask(torch.ones(1, n, dtype=torch.bool))
        sizes = None
        if blk is not None:
            mask.extra["blocks"] = blk
            sizes = np.bincount(blk.token_cluster)
        for d in d_models:
            arch = {"d_model": int(d), "n_heads": 4, "d_ff": 2 * int(d), "n_layers": int(n_layers)}
            torch.manual_seed(seed)
            enc = Encoder(3, **arch, dropout=0.0,
                          attention="sdpa" if blk is None else "cluster-blocked").eval()
            flops = encoder_flops(n, arch, 3, cluster_sizes=sizes)["total"]
            rows.append({"attention": attention, "d_model": int(d), "n_hits": n,
                         **_forward_rate(enc, x, mask, flops, repeats, reference)})
    return rows
