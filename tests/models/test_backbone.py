"""The encoder and heads: padding never matters, hit order never matters, losses skip padding."""

from __future__ import annotations

import pytest
import torch

from trackpipe.errors import ConfigError
from trackpipe.models import attention as A
from trackpipe.models.attention import AttentionMask
from trackpipe.models.backbone import Encoder
from trackpipe.models.heads import ClassificationHead, EncoderModel, JointModel, RegressionHead
from trackpipe.models.registry import resolve_config


def encoder(attention="sdpa", norm_first=False, options=None, seed=0):
    torch.manual_seed(seed)
    return Encoder(3, d_model=16, n_heads=2, d_ff=32, n_layers=2, dropout=0.1, norm_first=norm_first,
                   attention=attention, attention_options=options).eval()


def padded_batch(lengths, features=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(len(lengths), max(lengths), features, generator=g)
    valid = torch.arange(max(lengths))[None, :] < torch.tensor(lengths)[:, None]
    return x.masked_fill(~valid[..., None], 0.0), valid


@pytest.mark.parametrize("attention,options", [("sdpa", None), ("flash", None), ("flex", {"compile": "never"})])
@pytest.mark.parametrize("norm_first", [False, True])
def test_event_alone_equals_event_in_padded_batch(attention, options, norm_first):
    enc = encoder(attention, norm_first, options)
    x, valid = padded_batch([11, 4, 7])
    x[~valid] = 123.0  # padding content must be irrelevant
    with torch.no_grad():
        batch_out = enc(x, AttentionMask(valid))
        for b, n in enumerate([11, 4, 7]):
            alone = enc(x[b:b + 1, :n], AttentionMask(valid[b:b + 1, :n]))
            torch.testing.assert_close(batch_out[b, :n], alone[0], atol=1e-5, rtol=1e-5)


def test_permutation_equivariance():
    enc = encoder()
    x, valid = padded_batch([9])
    perm = torch.randperm(9)
    with torch.no_grad():
        out = enc(x, AttentionMask(valid))
        out_perm = enc(x[:, perm], AttentionMask(valid))
    torch.testing.assert_close(out[:, perm], out_perm, atol=1e-5, rtol=1e-5)


def test_no_gradient_reaches_padding():
    enc = encoder().train()
    x, valid = padded_batch([6, 3])
    x.requires_grad_(True)
    enc(x, AttentionMask(valid))[valid].sum().backward()
    assert (x.grad[~valid] == 0).all()
    assert (x.grad[valid] != 0).any()


def test_registered_backend_is_used_by_the_encoder():
    # The hook the cluster-blocked backend uses: a registered backend plugs straight into the encoder.
    def dense(q, k, v, mask):
        s = (q @ k.transpose(-1, -2)) / q.shape[-1] ** 0.5
        return torch.softmax(s.masked_fill(~mask.valid[:, None, None, :], float("-inf")), -1) @ v

    calls = []
    A.register_backend(A.AttentionBackend("test-dense", lambda o: (lambda *a: calls.append(1) or dense(*a)),
                                          True, False, True, False, "test"))
    try:
        x, valid = padded_batch([8, 5])
        with torch.no_grad():
            ref = encoder("sdpa")(x, AttentionMask(valid))
            out = encoder("test-dense")(x, AttentionMask(valid))
        torch.testing.assert_close(out[valid], ref[valid], atol=1e-5, rtol=1e-5)
        assert len(calls) == 2  # once per layer
    finally:
        del A.BACKENDS["test-dense"]


def _batch(lengths, n_classes=5, n_targets=3, seed=2):
    x, valid = padded_batch(lengths, seed=seed)
    g = torch.Generator().manual_seed(seed)
    cls = torch.randint(0, n_classes, valid.shape, generator=g)
    reg = torch.randn(*valid.shape, n_targets, generator=g)
    reg_valid = valid & (torch.rand(valid.shape, generator=g) > 0.2)
    return {"x": x, "valid": valid, "mask": AttentionMask(valid), "cls": cls, "reg": reg, "reg_valid": reg_valid}


def _flat(batch, b, n):
    return {"x": batch["x"][b:b + 1, :n], "valid": batch["valid"][b:b + 1, :n],
            "mask": AttentionMask(batch["valid"][b:b + 1, :n]), "cls": batch["cls"][b:b + 1, :n],
            "reg": batch["reg"][b:b + 1, :n], "reg_valid": batch["reg_valid"][b:b + 1, :n]}


@pytest.mark.parametrize("head", ["cla", "reg"])
def test_losses_exclude_padding(head):
    torch.manual_seed(0)
    h = ClassificationHead(16, 5) if head == "cla" else RegressionHead(16, 3, n_latent=2)
    model = EncoderModel(encoder(), h).eval()
    lengths = [7, 3]
    batch = _batch(lengths)
    # Garbage targets in the padding must not change anything.
    batch["cls"][~batch["valid"]] = 4
    batch["reg"][~batch["valid"]] = 1e6
    with torch.no_grad():
        loss, stats = model.loss(model(batch), batch)
        # Reference: per-event losses recombined by hand, weighted by each event's counted hits.
        parts = [model.loss(model(_flat(batch, b, n)), _flat(batch, b, n)) for b, n in enumerate(lengths)]
    key = "cla_hits" if head == "cla" else "reg_values"
    expected = sum(float(l) * s[key] for l, s in parts) / sum(s[key] for _, s in parts)
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    if head == "cla":
        assert stats["cla_hits"] == sum(lengths)
    else:
        assert stats["reg_values"] == 3 * int(batch["reg_valid"].sum())


def test_joint_model_loss_and_input():
    torch.manual_seed(0)
    reg = EncoderModel(encoder(), RegressionHead(16, 3, n_latent=4))
    cla_enc = Encoder(3 + 7, d_model=16, n_heads=2, d_ff=32, n_layers=1, dropout=0.0)
    cla = EncoderModel(cla_enc, ClassificationHead(16, 5))
    jm = JointModel(reg, cla, alpha=1.0, beta=0.3).eval()
    batch = _batch([6, 4])
    with torch.no_grad():
        out = jm(batch)
        loss, _ = jm.loss(out, batch)
        l_reg, _ = reg.loss(out, batch)
        l_cla, _ = cla.loss(out, batch)
    assert out["pred"].shape == (2, 6, 7) and out["logits"].shape == (2, 6, 5)
    assert float(loss) == pytest.approx(float(l_reg) + 0.3 * float(l_cla), rel=1e-6)


def test_resolve_config_defaults_and_errors():
    fa = resolve_config("encreg-fa")
    assert fa["architecture"]["attention"] == "flash" and fa["training"]["amp"] == "auto"
    jm = resolve_config("jm", {"joint": {"reg_layers": 9, "cla_layers": 15}})
    assert jm["joint"] == {"reg_layers": 9, "cla_layers": 15, "n_latent": 4, "alpha": 1.0, "beta": 0.3}
    with pytest.raises(ConfigError, match="unknown key enccla.architecture.depth"):
        resolve_config("enccla", {"architecture": {"depth": 3}})
    with pytest.raises(ConfigError, match="unknown model"):
        resolve_config("gpt")
    with pytest.raises(ConfigError, match="not divisible"):
        Encoder(3, d_model=10, n_heads=4)
