"""Contrastive tracker (seed 004 §3.4, seed 002 §2.2.1): encoder -> L2-normalised per-hit embedding,
trained with a multi-positive InfoNCE loss inside each locality cluster.

Loss over the anchors J (hits of particles with pT > ``pt_min``; all particles' hits when ``pt_min`` is
None, for stores without momenta), with cosine similarity s and
temperature T:

    L = -(1/|J|) Σ_{i∈J} (1/|P(i)|) Σ_{p∈P(i)} log[ exp(s(i,p)/T) / Σ_{u∈N(i)} exp(s(i,u)/T) ]

N(i) = the other hits of i's locality cluster, P(i) = the hits of N(i) from i's particle. The anchor
itself is left out of N(i) and P(i) (its self-similarity is 1 by construction and carries no
information). Anchors without a positive in their cluster do not count. With overlapping clusters an
anchor counts once per cluster it is in (one token per membership, as in the attention).

The loss is computed on the cluster-blocked layout of `locality.blocks` (clusters padded to bucket
lengths): per bucket one (clusters, L, L) similarity tensor, no N² matrix.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .backbone import Encoder

CONTRASTIVE = {"embedding_dim": 32, "temperature": 0.1, "pt_min": 0.9, "local_features": True, "pair_bias": None}
# pair_bias: None (plain attention, the paper's) or {"hidden": H, "values": bool, "edge_loss": w}: a
# `locality.pair_bias.GeometricPairBias` adds a learned bias from each hit pair's track-compatibility
# geometry to every layer's attention scores (and with values the pair embedding to the outputs; with
# edge_loss > 0 its same-particle logits are trained by `pair_edge_loss`, weight w beside the InfoNCE)


def cluster_relative(x: torch.Tensor, blocks, min_std: float = 1e-3) -> torch.Tensor:
    """Each hit's features standardised inside its locality cluster: (x - cluster mean) / cluster std.

    Hits of one cluster differ by a tiny fraction of the event-wide input scale; these features give the
    encoder the cluster's local geometry directly. A hit in several clusters gets the mean over them.
    Cluster-local, so chunks of whole clusters see the same values as the whole event.
    """
    th, tc, mult = blocks.device_cache("relative_index", x.device, lambda: (
        torch.as_tensor(blocks.token_hit, device=x.device), torch.as_tensor(blocks.token_cluster, device=x.device),
        torch.as_tensor(blocks.hit_multiplicity, device=x.device)))
    xt = x[th]
    C = blocks.n_clusters
    count = x.new_zeros(C).index_add(0, tc, torch.ones_like(xt[:, 0]))[:, None]
    mean = x.new_zeros(C, x.shape[1]).index_add(0, tc, xt) / count
    var = x.new_zeros(C, x.shape[1]).index_add(0, tc, (xt - mean[tc]) ** 2) / count
    rel = (xt - mean[tc]) / var.sqrt().clamp(min=min_std)[tc]
    return x.new_zeros(x.shape).index_add(0, th, rel) / mult[:, None].to(x.dtype)


def contrastive_loss(embedding: torch.Tensor, particle: torch.Tensor, anchor: torch.Tensor, blocks,
                     temperature: float) -> tuple[torch.Tensor, int]:
    """(mean loss over anchors, number of anchors) for L2-normalised embeddings (hits, dim) of the hit
    sequence the block tables index; particle (hits,) int (0 = noise, never a positive); anchor (hits,) bool."""
    emb = embedding.float()
    # Zero that stays on the graph: a chunk without anchors (e.g. only low-pT or cut-off hits) still gives
    # a loss that backward() accepts, with zero gradients, instead of stopping the training loop.
    total = emb.sum() * 0.0
    n_anchors = 0
    very_negative = -1e9  # finite: a row without keys must not produce NaN gradients through logsumexp
    for hit, valid in blocks.bucket_slots(emb.device):
        L = hit.shape[1]
        e = emb[hit]                                          # (C, L, E)
        s = torch.bmm(e, e.transpose(1, 2)) / temperature     # (C, L, L)
        not_self = ~torch.eye(L, dtype=torch.bool, device=emb.device)
        keys = valid[:, None, :] & not_self
        pid = particle[hit]
        pos = keys & (pid[:, :, None] == pid[:, None, :]) & (pid[:, :, None] > 0)
        n_pos = pos.sum(-1)
        use = valid & anchor[hit] & (n_pos > 0)
        if not bool(use.any()):
            continue
        lse = torch.logsumexp(s.masked_fill(~keys, very_negative), dim=-1)
        pos_mean = (s * pos).sum(-1) / n_pos.clamp(min=1)
        total = total + (lse - pos_mean)[use].sum()
        n_anchors += int(use.sum())
    return total / max(n_anchors, 1), n_anchors


class ContrastiveModel(nn.Module):
    """Encoder + two-layer projection head -> unit-length embedding per hit (output key ``embedding``).

    With ``local_features`` the encoder reads the inputs and their cluster-standardised copies."""

    task = "embedding"

    def __init__(self, encoder: Encoder, d_model: int, *, embedding_dim: int = 32, temperature: float = 0.1,
                 pt_min: float = 0.9, local_features: bool = False, pair_bias: nn.Module | None = None,
                 coordinate_inputs: tuple | None = None, edge_loss: float = 0.0):
        """pair_bias: a `GeometricPairBias` for the encoder's layers; it reads the hits' physical x, y, z,
        recovered from the standardised inputs by ``coordinate_inputs`` = (input columns of x, y, z,
        their means, their standard deviations). edge_loss: the weight of the pair bias's same-particle
        loss (`locality.pair_bias.pair_edge_loss`; the pair bias must give edge logits)."""
        super().__init__()
        self.local_features = bool(local_features)  # encoder input = [x, cluster_relative(x)]
        self.encoder = encoder
        self.pair_bias = pair_bias
        if pair_bias is not None:
            if coordinate_inputs is None:
                raise ValueError("a pair bias needs coordinate_inputs (the x, y, z input columns and their scales)")
            columns, mean, std = coordinate_inputs
            self.coordinate_columns = [int(c) for c in columns]
            self.register_buffer("coordinate_mean", torch.tensor(mean, dtype=torch.float32), persistent=False)
            self.register_buffer("coordinate_std", torch.tensor(std, dtype=torch.float32), persistent=False)
        self.edge_loss = float(edge_loss)
        if self.edge_loss > 0 and getattr(pair_bias, "to_edge", None) is None:
            raise ValueError("edge_loss > 0 needs a pair bias with edge_logits")
        self.head = nn.Sequential(nn.Linear(d_model, d_model), nn.ReLU(), nn.Linear(d_model, embedding_dim))
        self.temperature = float(temperature)
        self.pt_min = None if pt_min is None else float(pt_min)  # None: every particle's hits are anchors

    def forward(self, batch: dict) -> dict:
        x = batch["x"]
        B, N, F_ = x.shape
        bias = values = edges = None
        if self.pair_bias is not None:
            coords = x[..., self.coordinate_columns].reshape(B * N, 3) * self.coordinate_std + self.coordinate_mean
            bias, values, edges = self.pair_bias(coords, batch["mask"].extra["blocks"])
        if self.local_features:
            rel = cluster_relative(x.reshape(B * N, F_), batch["mask"].extra["blocks"]).reshape(B, N, F_)
            x = torch.cat([x, rel], dim=-1)
        h = self.encoder(x, batch["mask"], pair_bias=bias, pair_values=values)
        out = {"embedding": F.normalize(self.head(h), dim=-1)}
        if edges is not None:
            out["pair_logits"] = edges
        return out

    def loss(self, out: dict, batch: dict):
        blocks = batch["mask"].extra.get("blocks")
        if blocks is None:
            raise ValueError("the contrastive loss needs the batch's locality block tables (mask.extra['blocks'])")
        emb = out["embedding"]
        B, N, E = emb.shape
        valid = batch["valid"].reshape(-1)
        particle = torch.where(valid, batch["particle_id"].reshape(-1), 0)
        anchor = valid & (particle > 0)
        if self.pt_min is not None:  # stores without momenta (REDVID) set pt_min: null
            anchor &= batch["pt"].reshape(-1) > self.pt_min
        if "interior" in batch:  # training chunks cut from a region: hits cut from some windows are keys only
            anchor &= batch["interior"].reshape(-1)
        loss, n = contrastive_loss(emb.reshape(B * N, E), particle, anchor, blocks, self.temperature)
        stats = {"con_loss__num": float(loss.detach()) * n, "con_loss__den": float(n)}
        if self.edge_loss > 0:
            from ..locality.pair_bias import pair_edge_loss

            edge, n_pairs = pair_edge_loss(out["pair_logits"], particle, blocks)
            stats.update(edge_loss__num=float(edge.detach()) * n_pairs, edge_loss__den=float(n_pairs))
            loss = loss + self.edge_loss * edge
        return loss, stats
