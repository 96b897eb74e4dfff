"""The per-parameter marginal loss of the joint classifier, against a brute-force sum over classes."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from trackpipe.models.heads import ClassificationHead, factor_marginal_loss


def _reference(logits: torch.Tensor, target: torch.Tensor, bins: list[int]) -> float:
    """Marginal probabilities by summing softmax probabilities class by class (noise = one more value)."""
    p = torch.softmax(logits.double(), dim=1).numpy()
    n_track = int(np.prod(bins))
    total = 0.0
    for f, size in enumerate(bins):
        losses = []
        for i in range(len(target)):
            t = int(target[i])
            if t == n_track:
                prob = p[i, n_track]
            else:
                want = np.unravel_index(t, bins)[f]
                prob = sum(p[i, c] for c, idx in enumerate(itertools.product(*map(range, bins))) if idx[f] == want)
            losses.append(-np.log(prob))
        total += np.mean(losses)
    return total / len(bins)


@pytest.mark.parametrize("bins", [[3, 4], [2, 3, 2], [5]])
def test_marginal_loss_matches_brute_force(bins):
    torch.manual_seed(0)
    n_classes = int(np.prod(bins)) + 1
    logits = torch.randn(7, n_classes) * 2
    target = torch.tensor([0, n_classes - 1, 3 % (n_classes - 1), n_classes - 2, 1, n_classes - 1, 2])
    got = float(factor_marginal_loss(logits, target, bins))
    assert got == pytest.approx(_reference(logits, target, bins), rel=1e-6)


def test_head_adds_the_weighted_marginal_loss():
    torch.manual_seed(1)
    bins = [3, 2]
    plain = ClassificationHead(8, 7, bins=bins)
    mixed = ClassificationHead(8, 7, bins=bins, factor_loss=0.5)
    mixed.load_state_dict(plain.state_dict())
    h = torch.randn(2, 5, 8)
    batch = {"valid": torch.ones(2, 5, dtype=torch.bool), "cls": torch.randint(0, 7, (2, 5))}
    base, _ = plain.loss(plain(h), batch)
    total, stats = mixed.loss(mixed(h), batch)
    marginal = factor_marginal_loss(plain(h)["logits"].reshape(10, 7), batch["cls"].reshape(10), bins)
    assert float(total) == pytest.approx(float(base) + 0.5 * float(marginal), rel=1e-6)
    assert stats["factor_loss_sum"] == pytest.approx(float(marginal) * 10, rel=1e-6)
    with pytest.raises(ValueError, match="bins per parameter"):
        ClassificationHead(8, 9, bins=[3, 2], factor_loss=1.0)
