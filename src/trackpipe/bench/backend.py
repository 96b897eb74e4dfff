"""The ``cluster-blocked`` attention backend: the encoder's attention restricted to locality clusters.

``trackpipe.models.attention`` leaves this backend to the locality work; it is registered here on demand
(``ensure_cluster_backend``, never at import). Per event the caller puts the ``ClusterBlocks`` of
``trackpipe.locality.build_blocks`` into ``AttentionMask.extra["blocks"]`` (batch size 1); the call goes to
``trackpipe.locality.attention.cluster_attention`` (cluster-blocked SDPA on CPU, compiled flex on CUDA).
"""

from __future__ import annotations

from ..errors import ConfigError
from ..models.attention import BACKENDS, AttentionBackend, AttentionMask, register_backend

NAME = "cluster-blocked"


def _build(options: dict):
    from ..locality.attention import cluster_attention

    path = str(options.get("path", "auto"))

    def attend(q, k, v, mask: AttentionMask):
        blocks = mask.extra.get("blocks")
        if blocks is None:
            raise ConfigError("cluster-blocked attention needs AttentionMask.extra['blocks'] (ClusterBlocks)")
        if q.shape[0] != 1:
            raise ConfigError(f"cluster-blocked attention runs one event at a time, got batch {q.shape[0]}")
        return cluster_attention(q, k, v, blocks, backend=path)

    return attend


def ensure_cluster_backend() -> str:
    if NAME not in BACKENDS:
        register_backend(AttentionBackend(
            NAME, _build, backward_on_cpu=True, needs_cuda=False, padding_mask=False, custom_masks=True,
            doc="attention inside locality clusters (AttentionMask.extra['blocks']); blocked SDPA / flex"))
    return NAME
