"""The classifier's training step (real hits projected alone; fused with the cross-entropy without the factor
loss) against the plain path: same loss, statistics and gradients (up to float rounding), for EncCla, JM and
a head with the factor loss, on padded batches."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from trackpipe.models.attention import AttentionMask
from trackpipe.models.backbone import Encoder
from trackpipe.models.heads import ClassificationHead, EncoderModel, JointModel, RegressionHead
from trackpipe.models.linear_ce import linear_cross_entropy

N_CLASSES = 37


def _batch(lengths, features=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    n = max(lengths)
    valid = torch.arange(n)[None, :] < torch.tensor(lengths)[:, None]
    x = torch.randn(len(lengths), n, features, generator=g).masked_fill(~valid[..., None], 0.0)
    cls = torch.randint(0, N_CLASSES, (len(lengths), n), generator=g)
    cls[~valid] = N_CLASSES + 5  # garbage in the padding: out of range, so any use of it would fail
    reg = torch.randn(len(lengths), n, 3, generator=g)
    return {"x": x, "mask": AttentionMask(valid), "valid": valid, "cls": cls, "reg": reg, "reg_valid": valid.clone()}


def _encoder(input_dim=3, seed=0):
    torch.manual_seed(seed)
    return Encoder(input_dim, d_model=16, n_heads=2, d_ff=32, n_layers=2, dropout=0.0)


def _classifier():
    return EncoderModel(_encoder(), ClassificationHead(16, N_CLASSES))


def _joint():
    reg = EncoderModel(_encoder(), RegressionHead(16, 3, n_latent=2))
    return JointModel(reg, EncoderModel(_encoder(3 + 5, seed=1), ClassificationHead(16, N_CLASSES)), beta=0.3)


def _loss_and_grads(model, batch, *, fused: bool):
    """Training mode either way; `fused=False` forces the logits path (projection of every padded hit,
    indexing of the real ones, F.cross_entropy) that the head used before the fused loss."""
    model.train()
    model.zero_grad(set_to_none=True)
    out = model(batch)
    assert ("cla_hidden" in out) and ("logits" not in out)
    if not fused:
        head = model.classifier.head if isinstance(model, JointModel) else model.head
        out = {**out, "logits": head.proj(out.pop("cla_hidden"))}
    loss, stats = model.loss(out, batch)
    loss.backward()
    return loss.detach(), stats, {k: p.grad.clone() for k, p in model.named_parameters()}


def _factor_classifier():
    torch.manual_seed(0)
    return EncoderModel(_encoder(), ClassificationHead(16, N_CLASSES, bins=[3, 4, 3], factor_loss=0.5))


@pytest.mark.parametrize("build", [_classifier, _joint, _factor_classifier])
def test_fused_training_loss_equals_plain_loss_and_gradients(build):
    model = build()
    batch = _batch([13, 5, 9])
    plain_loss, plain_stats, plain_grads = _loss_and_grads(model, batch, fused=False)
    fused_loss, fused_stats, fused_grads = _loss_and_grads(model, batch, fused=True)
    torch.testing.assert_close(fused_loss, plain_loss, rtol=1e-6, atol=1e-7)
    assert fused_stats == pytest.approx(plain_stats, rel=1e-5) and fused_stats["cla_hits"] == 27
    assert set(fused_grads) == set(plain_grads)
    for name, g in plain_grads.items():
        assert g.abs().sum() > 0, name  # every parameter takes part (the comparison is not vacuous)
        torch.testing.assert_close(fused_grads[name], g, rtol=1e-5, atol=1e-7, msg=name)


@pytest.mark.parametrize("chunk", [1, 4, 7, 100])
def test_linear_cross_entropy_matches_functional(chunk):
    g = torch.Generator().manual_seed(3)
    h = torch.randn(23, 8, generator=g, requires_grad=True)
    w = torch.randn(N_CLASSES, 8, generator=g, requires_grad=True)
    b = torch.randn(N_CLASSES, generator=g, requires_grad=True)
    t = torch.randint(0, N_CLASSES, (23,), generator=g)
    logits = F.linear(h, w, b)
    ref = F.cross_entropy(logits, t)
    ref_grads = torch.autograd.grad(2.5 * ref, (h, w, b))  # a scale before the loss (JM's beta) carries over
    loss, correct = linear_cross_entropy(h, w, b, t, chunk=chunk)
    grads = torch.autograd.grad(2.5 * loss, (h, w, b))
    torch.testing.assert_close(loss, ref.detach())
    assert int(correct) == int((logits.argmax(-1) == t).sum())
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_eval_mode_and_no_grad_still_give_logits():
    model = _classifier()
    batch = _batch([4, 2])
    with torch.no_grad():
        assert model.train()(batch)["logits"].shape == (2, 4, N_CLASSES)
    evaluated = model.eval()(batch)["logits"]
    assert evaluated.shape == (2, 4, N_CLASSES)
    # a training step's outputs still give every hit's logits when read (dropout is 0 here)
    trained = model.train()(batch)
    assert "logits" not in trained
    torch.testing.assert_close(trained["logits"], evaluated)
    loss, _ = model.loss(trained, batch)  # read logits: the loss takes them, with the same value
    torch.testing.assert_close(loss, model.loss({"logits": evaluated}, batch)[0])
    with pytest.raises(KeyError):
        trained["pred"]


def test_autocast_falls_back_to_projected_logits():
    """Under autocast the fused fp32 kernel is not used; the loss projects the real hits and takes the
    cross-entropy in fp32, as the logits path does."""
    model = _classifier().train()
    batch = _batch([6, 3])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(batch)
        loss, _ = model.loss(out, batch)
        ref, _ = model.loss({"logits": model.head.proj(out["cla_hidden"])}, batch)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, ref)


def test_targets_out_of_range_are_an_error():
    h, w = torch.randn(3, 4), torch.randn(5, 4)
    with pytest.raises(ValueError, match="targets outside"):
        linear_cross_entropy(h, w, None, torch.tensor([0, 5, 1]))
