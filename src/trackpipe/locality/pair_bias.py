"""Geometric pair bias for attention inside locality clusters: a small MLP turns each hit pair's
track-compatibility features into one additive attention bias per layer and head.

Why: a hit alone says nothing about which track it is on; two hits do. In a barrel window (3.5 mm x
130 mm on the R = 91 mm cylinder) a pT > 0.9 GeV track shares its neighbourhood with about ten
low-pT hits, and what singles out its other hits is the pair geometry that seeding and GNN edge
classifiers use: the vertex z of the line through the two hits and its bending dphi/dr. Plain
q·k attention must learn those ratios from standardised coordinates, which a CPU budget does not
allow (issue 15: barrel DM 0.08 after 40 minutes). Given as features, they are one MLP away.

Pair features of query hit i and key hit j (physical units, mm and rad), all invariant under rotations
about the beam axis (the training augmentation's phi rotation) and odd or even under z -> -z:

    dr/100, dz/100, 25·dphi, z0/100, 1000·dphi/dr, 1000·dphi/dz, 5·d(z/r), [|dr| < 1 mm]

z0 = z_i - r_i·dz/dr is the z at r = 0 of the straight line through the two hits in (r, z) (symmetric
in i, j); ratios use denominators of at least 1 mm and are clipped to ±10 (pairs on one layer or one
disk). The MLP's last layer starts at zero, so an untrained bias is plain attention. With ``values``
the MLP's hidden pair embedding also flows into the attention output (``pair_values``): a hit then
receives the geometry of the pairs it attends to (their vertex z, bending), not only their hits' features,
which lets the next layer compare two hits' candidate track parameters.

With ``edge_logits`` the MLP also predicts whether the two hits come from one particle (the edge
classifier of GNN trackers, on the same features). Trained directly on the pair labels
(`pair_edge_loss`), its hidden layer learns the track-compatibility geometry from every pair of every
window, low-pT ones included, instead of only through the gradient that the contrastive loss sends
back through the attention scores.

The bias is computed on the cluster-blocked layout (`locality.blocks`, clusters padded to bucket
lengths): per bucket a (clusters, layers, heads, L, L) tensor, no N² matrix.
"""

from __future__ import annotations

import math

import torch
from torch import nn

PAIR_FEATURES = ("dr", "dz", "dphi", "z0", "dphi_dr", "dphi_dz", "dcot", "same_radius")
PAIR_BIAS_DEFAULTS = {"hidden": 32, "values": False, "edge_loss": 0.0}
# edge_loss > 0: the MLP also gives a same-particle logit per pair, trained with that weight by
# `pair_edge_loss` beside the contrastive loss (ContrastiveModel)
_CLIP = 10.0


def pair_features(coords: torch.Tensor) -> torch.Tensor:
    """(..., L, 3) physical (x, y, z) of the hits of padded clusters -> (..., L, L, 8) features of every
    (query i, key j) pair, in the order of ``PAIR_FEATURES``."""
    x, y, z = coords.unbind(-1)
    r = torch.hypot(x, y)
    phi = torch.atan2(y, x)
    dr = r[..., None, :] - r[..., :, None]
    dz = z[..., None, :] - z[..., :, None]
    dphi = torch.remainder(phi[..., None, :] - phi[..., :, None] + math.pi, 2 * math.pi) - math.pi

    def safe(d):  # a denominator of at least 1 mm in size, with its sign (0 counts as positive)
        return torch.where(d < 0, torch.clamp(d, max=-1.0), torch.clamp(d, min=1.0))

    z0 = z[..., :, None] - r[..., :, None] * dz / safe(dr)
    cot = z / r.clamp(min=1.0)
    feats = [dr / 100, dz / 100, 25 * dphi, (z0 / 100).clamp(-_CLIP, _CLIP),
             (1000 * dphi / safe(dr)).clamp(-_CLIP, _CLIP), (1000 * dphi / safe(dz)).clamp(-_CLIP, _CLIP),
             5 * (cot[..., None, :] - cot[..., :, None]), (dr.abs() < 1.0).to(coords.dtype)]
    return torch.stack(feats, dim=-1)


class GeometricPairBias(nn.Module):
    """Pair features -> MLP -> additive attention bias, ``n_layers`` x ``n_heads`` values per pair."""

    def __init__(self, n_layers: int, n_heads: int, hidden: int = 32, *, head_dim: int | None = None,
                 values: bool = False, edge_logits: bool = False):
        """values: also return the MLP's hidden pair embedding g (hidden wide) and hold per layer and head
        a projection ``value_weight`` (n_layers, n_heads, hidden, head_dim) into the attention output
        (`locality.attention.cluster_blocked_attention`'s pair_values), zero at the start.
        edge_logits: also return a same-particle logit per pair (``to_edge``)."""
        super().__init__()
        self.n_layers, self.n_heads = int(n_layers), int(n_heads)
        self.embed = nn.Sequential(nn.Linear(len(PAIR_FEATURES), hidden), nn.ReLU())
        self.to_bias = nn.Linear(hidden, self.n_layers * self.n_heads)
        nn.init.zeros_(self.to_bias.weight)
        nn.init.zeros_(self.to_bias.bias)
        self.value_weight = None
        if values:
            if head_dim is None:
                raise ValueError("pair values need the attention head_dim")
            self.value_weight = nn.Parameter(torch.zeros(self.n_layers, self.n_heads, hidden, int(head_dim)))
        self.to_edge = nn.Linear(hidden, 1) if edge_logits else None

    def forward(self, coords: torch.Tensor, blocks) -> tuple[list[torch.Tensor], tuple | None, list | None]:
        """coords (hits, 3) physical x, y, z of the sequence the block tables index -> (per bucket of
        ``blocks.buckets()`` a (clusters, n_layers, n_heads, L, L) bias; with values the pair values
        (per bucket the (clusters, L, L, hidden) embedding, ``value_weight``), else None; with edge_logits
        per bucket the (clusters, L, L) same-particle logits, else None). Padding slots get finite values;
        the attention's key-padding mask (and `pair_edge_loss`'s) removes them."""
        bias, embedded, edges = [], [], []
        for hit, _valid in blocks.bucket_slots(coords.device):
            C, L = hit.shape
            g = self.embed(pair_features(coords[hit].to(self.to_bias.weight.dtype)))  # (C, L, L, hidden)
            b = self.to_bias(g)                                                      # (C, L, L, layers·heads)
            bias.append(b.view(C, L, L, self.n_layers, self.n_heads).permute(0, 3, 4, 1, 2))
            embedded.append(g)
            if self.to_edge is not None:
                edges.append(self.to_edge(g)[..., 0])
        return (bias, None if self.value_weight is None else (embedded, self.value_weight),
                edges if self.to_edge is not None else None)


def pair_edge_loss(logits: list[torch.Tensor], particle: torch.Tensor, blocks) -> tuple[torch.Tensor, int]:
    """Class-balanced binary cross-entropy of the same-particle logits (per bucket (clusters, L, L), from
    `GeometricPairBias` with edge_logits) over every pair of distinct hits in one cluster; label 1 when
    both hits belong to one particle (particle > 0; 0 = noise). Balanced: the mean over true pairs plus
    the mean over false pairs, halved (a barrel window's pairs are mostly false).
    Returns (loss, number of pairs)."""
    pos_sum = neg_sum = logits[0].sum() * 0.0 if logits else particle.new_zeros((), dtype=torch.float32)
    n_pos = n_neg = 0
    for (hit, valid), z in zip(blocks.bucket_slots(particle.device), logits):
        L = hit.shape[1]
        pairs = valid[:, :, None] & valid[:, None, :] & ~torch.eye(L, dtype=torch.bool, device=hit.device)
        pid = particle[hit]
        same = (pid[:, :, None] == pid[:, None, :]) & (pid[:, :, None] > 0)
        z = z.to(torch.promote_types(z.dtype, torch.float32))  # bf16 / fp16 logits under AMP -> fp32
        pos, neg = pairs & same, pairs & ~same
        # softplus(-z) = -log sigmoid(z), softplus(z) = -log(1 - sigmoid(z))
        pos_sum = pos_sum + torch.nn.functional.softplus(-z[pos]).sum()
        neg_sum = neg_sum + torch.nn.functional.softplus(z[neg]).sum()
        n_pos += int(pos.sum())
        n_neg += int(neg.sum())
    loss = 0.5 * (pos_sum / max(n_pos, 1) + neg_sum / max(n_neg, 1))
    return loss, n_pos + n_neg

