"""Heads (per-hit outputs + their loss) and the encoder models built from them.

A model maps a batch dict to an output dict and supplies its own loss, so the training loop knows
nothing about model internals. Batch keys: ``x`` (B, N, F) inputs, ``mask`` (`AttentionMask`),
``valid`` (B, N) real hits, and the targets ``cls`` (B, N), ``reg`` (B, N, T), ``reg_valid`` (B, N).
Padded hits never enter a loss or a statistic; noise hits have a class but no regression target.

`loss` returns the scalar to minimise and a dict of summed statistics (sums and counts, so epochs
aggregate exactly over batches of different sizes).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .backbone import Encoder
from .linear_ce import linear_cross_entropy


def factor_marginal_loss(logits: torch.Tensor, target: torch.Tensor, bins: list[int],
                         log_probs: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over the class parameters of the cross-entropy of each parameter's marginal distribution.

    The joint classes (the last logit is noise) are the Cartesian product of per-parameter bins
    (`targets.Preprocessing.classes`), so the probability that a hit's parameter f is in bin i is the sum
    of the joint probabilities of every class with that bin, with noise as one more value of every
    parameter. Same head, same outputs; the loss adds a dense signal (a phi bin holds ~1/30 of the hits,
    a joint class ~1/5 400), which the joint class's own cross-entropy gives only slowly.

    Computed from the joint probabilities (one softmax, shared with the joint loss through `log_probs`,
    then plain sums over the other axes) rather than a logsumexp per parameter over the (hits x 5 400)
    logits, which costs several passes over them.
    """
    n, n_classes = logits.shape
    if log_probs is None:
        log_probs = F.log_softmax(logits, dim=-1)
    p = log_probs.exp()
    track = p[:, :-1].reshape(n, *bins)
    is_noise = target == n_classes - 1
    factors = torch.unravel_index(target.clamp(max=n_classes - 2), tuple(bins))
    total = logits.new_zeros(())
    for f in range(len(bins)):
        others = tuple(d + 1 for d in range(len(bins)) if d != f)
        marginal = track.sum(dim=others) if others else track                     # (hits, bins[f])
        prob = torch.where(is_noise, p[:, -1], marginal.gather(1, factors[f][:, None])[:, 0])
        total = total - torch.log(prob.clamp(min=1e-30)).mean()
    return total / len(bins)


class TrainingOutputs(dict):
    """A classification head's outputs in a training step: the hidden states (``cla_hidden``), with
    ``logits`` of every hit projected only when someone reads them (then as in evaluation), so that the
    loss can project the real hits alone while callers that read logits keep working."""

    def __init__(self, hidden: torch.Tensor, proj: nn.Module):
        super().__init__(cla_hidden=hidden)
        self._proj = proj

    def __missing__(self, key):
        if key != "logits":
            raise KeyError(key)
        self["logits"] = self._proj(self["cla_hidden"])
        return self["logits"]


class ClassificationHead(nn.Module):
    """Joint classes over the parameter bins (`bins`: bins per class parameter; the last class is noise).
    factor_loss > 0 adds that weight times `factor_marginal_loss` to the joint cross-entropy.

    In a training step (training mode, gradients on) the forward returns the hidden states
    (`TrainingOutputs`: logits only on demand) and `loss` projects only the real hits: with 5 401 classes
    the padded logits and their passes through memory cost as much as the projection itself. Without the
    factor loss, in fp32, the projection is fused with the cross-entropy (`linear_ce`: the logits never
    exist). Evaluation and inference get ``logits`` as always."""

    task = "classification"

    def __init__(self, d_model: int, n_classes: int, *, bins: list[int] | None = None, factor_loss: float = 0.0):
        super().__init__()
        self.proj = nn.Linear(d_model, n_classes)
        self.bins = list(bins) if bins is not None else None
        self.factor_loss = float(factor_loss)
        if self.factor_loss and (self.bins is None or math.prod(self.bins) + 1 != n_classes):
            raise ValueError(f"factor_loss needs the bins per parameter of the {n_classes} classes, got {bins}")

    def forward(self, h: torch.Tensor) -> dict:
        if self.training and torch.is_grad_enabled():
            return TrainingOutputs(h, self.proj)
        return {"logits": self.proj(h)}

    def loss(self, out: dict, batch: dict):
        valid = batch["valid"]
        target = batch["cls"][valid]
        if "logits" in out:
            logits = out["logits"][valid].float()  # fp32 loss under autocast (.float() is free for fp32)
        else:
            h = out["cla_hidden"][valid]  # padding never reaches the output layer
            if not self.factor_loss and h.dtype == torch.float32 and not torch.is_autocast_enabled(h.device.type):
                loss, correct = linear_cross_entropy(h, self.proj.weight, self.proj.bias, target)
                return loss, {"cla_loss_sum": float(loss.detach()) * len(target), "cla_correct": float(correct),
                              "cla_hits": float(len(target))}
            logits = self.proj(h).float()
        log_probs = F.log_softmax(logits, dim=-1)
        loss = F.nll_loss(log_probs, target)
        stats = {"cla_loss_sum": float(loss.detach()) * len(target)}
        if self.factor_loss:
            marginal = factor_marginal_loss(logits, target, self.bins, log_probs)
            stats["factor_loss_sum"] = float(marginal.detach()) * len(target)
            loss = loss + self.factor_loss * marginal
        correct = (logits.argmax(-1) == target).sum()
        return loss, {**stats, "cla_correct": float(correct), "cla_hits": float(len(target))}


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
        if "factor_loss_sum" in stats:
            out["factor_loss"] = stats["factor_loss_sum"] / stats["cla_hits"]
    if stats.get("reg_values"):
        out["reg_mse"] = stats["reg_sse"] / stats["reg_values"]
    return out
