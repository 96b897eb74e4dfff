"""Heads (per-hit outputs + their loss) and the encoder models built from them.

A model maps a batch dict to an output dict and supplies its own loss, so the training loop knows
nothing about model internals. Batch keys: ``x`` (B, N, F) inputs, ``mask`` (`AttentionMask`),
``valid`` (B, N) real hits, and the targets ``cls`` (B, N), ``reg`` (B, N, T), ``reg_valid`` (B, N).
Padded hits never enter a loss or a statistic; noise hits have a class but no regression target.

`loss` returns the scalar to minimise and a dict of summed statistics (sums and counts, so epochs
aggregate exactly over batches of different sizes).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .backbone import Encoder


class ClassificationHead(nn.Module):
    task = "classification"

    def __init__(self, d_model: int, n_classes: int):
        super().__init__()
        self.proj = nn.Linear(d_model, n_classes)

    def forward(self, h: torch.Tensor) -> dict:
        return {"logits": self.proj(h)}

    def loss(self, out: dict, batch: dict):
        valid = batch["valid"]
        logits = out["logits"][valid].float()
        target = batch["cls"][valid]
        loss = F.cross_entropy(logits, target)
        correct = (logits.argmax(-1) == target).sum()
        return loss, {"cla_loss_sum": float(loss.detach()) * len(target), "cla_correct": float(correct),
                      "cla_hits": float(len(target))}


class RegressionHead(nn.Module):
    """n_targets supervised outputs followed by n_latent free ones (the joint model's latents)."""

    task = "regression"

    def __init__(self, d_model: int, n_targets: int, n_latent: int = 0):
        super().__init__()
        self.n_targets = n_targets
        self.proj = nn.Linear(d_model, n_targets + n_latent)

    def forward(self, h: torch.Tensor) -> dict:
        return {"pred": self.proj(h)}

    def loss(self, out: dict, batch: dict):
        use = batch["valid"] & batch["reg_valid"]
        pred = out["pred"][..., :self.n_targets][use].float()
        target = batch["reg"][use]
        sse = ((pred - target) ** 2).sum()
        n = pred.numel()
        loss = sse / max(n, 1)
        return loss, {"reg_sse": float(sse.detach()), "reg_values": float(n)}


class EncoderModel(nn.Module):
    """Encoder + one head: EncCla (classification head) and EncReg (regression head)."""

    def __init__(self, encoder: Encoder, head: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.task = head.task

    def forward(self, batch: dict) -> dict:
        return self.head(self.encoder(batch["x"], batch["mask"]))

    def loss(self, out: dict, batch: dict):
        return self.head.loss(out, batch)


class JointModel(nn.Module):
    """JM X:Y: an X-layer regressor whose outputs (targets + free latents) join the coordinates as the
    input of a Y-layer classifier; loss alpha * L_reg + beta * L_cla. Tracks come from the classifier."""

    task = "classification"

    def __init__(self, regressor: EncoderModel, classifier: EncoderModel, *, alpha: float = 1.0, beta: float = 0.3):
        super().__init__()
        self.regressor = regressor
        self.classifier = classifier
        self.alpha = alpha
        self.beta = beta

    def forward(self, batch: dict) -> dict:
        pred = self.regressor(batch)["pred"]
        x = torch.cat([batch["x"], pred.to(batch["x"].dtype)], dim=-1)
        out = self.classifier.head(self.classifier.encoder(x, batch["mask"]))
        out["pred"] = pred
        return out

    def loss(self, out: dict, batch: dict):
        l_reg, s_reg = self.regressor.loss(out, batch)
        l_cla, s_cla = self.classifier.loss(out, batch)
        return self.alpha * l_reg + self.beta * l_cla, {**s_reg, **s_cla}


def epoch_metrics(stats: dict) -> dict:
    """Per-hit accuracy and mean squared error from summed batch statistics; any pair of statistics
    `<name>__num` / `<name>__den` (e.g. EncDec's next-hit accuracy) becomes the ratio `<name>`."""
    out = {}
    for key, num in stats.items():
        if key.endswith("__num") and stats.get(key[:-5] + "__den"):
            out[key[:-5]] = num / stats[key[:-5] + "__den"]
    if stats.get("cla_hits"):
        out["accuracy"] = stats["cla_correct"] / stats["cla_hits"]
        out["cla_loss"] = stats["cla_loss_sum"] / stats["cla_hits"]
    if stats.get("reg_values"):
        out["reg_mse"] = stats["reg_sse"] / stats["reg_values"]
    return out
