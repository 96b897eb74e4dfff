"""Output projection + cross-entropy in one pass over chunks of hits: the classifier's training loss.

The joint head has 5 401 classes, so on the CPU the (hits x classes) logits of a batch are ~100 MB: the
projection, log-softmax, its backward, the bias broadcast and the gradient of the logits each stream them
through memory, and at d_model 64 those passes cost as much as the projection's FLOPs. Here the logits of
``chunk`` hits at a time (a few MB, cache-resident) are formed, reduced to the loss, turned into their
gradient (softmax - one-hot) / n and pushed through the projection's two gradient matmuls at once: the full
logits never exist. The loss is a terminal scalar, so the gradients are exact up to float rounding:
backward only scales them by the incoming gradient (e.g. JM's beta). Same FLOPs as projection forward +
backward; the logits are not kept (argmax statistics are taken on the fly).
"""

from __future__ import annotations

import torch

CHUNK_BYTES = 2 * 2**20  # one thread: logits of ~97 hits of 5 401 classes (measured best at d_model 64 and 128)
# Several threads: every op on a chunk is a parallel region that waits for its slowest thread; on a shared
# machine hundreds of small regions per step cost more than the cache misses of a few large ones (measured
# on 2 loaded cores: small chunks up to 2x slower than unchunked). Bounded so that memory stays ~64 MB.
PARALLEL_CHUNK_BYTES = 64 * 2**20


def chunk_rows(n_classes: int, itemsize: int = 4) -> int:
    """Hits per chunk for the current torch thread count."""
    budget = CHUNK_BYTES if torch.get_num_threads() == 1 else PARALLEL_CHUNK_BYTES
    return max(16, budget // (int(n_classes) * itemsize))


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, weight, bias, target, chunk: int):
        n = h.shape[0]
        need_grad = any(ctx.needs_input_grad[:3])
        loss = h.new_zeros((), dtype=torch.float64)  # summed over chunks in double: order-independent to ~1e-16
        correct = torch.zeros((), dtype=torch.int64, device=h.device)
        grad_h = torch.empty_like(h) if need_grad else None
        grad_w = torch.zeros_like(weight) if need_grad else None
        grad_b = torch.zeros_like(bias) if need_grad and bias is not None else None
        for s in range(0, n, chunk):
            hc, tc = h[s:s + chunk], target[s:s + chunk]
            logits = torch.addmm(bias, hc, weight.t()) if bias is not None else hc @ weight.t()
            top, arg = logits.max(dim=1)
            correct += (arg == tc).sum()
            picked = logits.gather(1, tc[:, None])[:, 0]
            prob = logits.sub_(top[:, None]).exp_()  # in place: the logits are not needed any more
            norm = prob.sum(dim=1)
            loss += (top + norm.log() - picked).sum(dtype=torch.float64)
            if need_grad:
                prob.div_((norm * n)[:, None])  # softmax / n (mean reduction) ...
                prob[torch.arange(len(tc), device=h.device), tc] -= 1.0 / n  # ... minus one-hot / n
                torch.mm(prob, weight, out=grad_h[s:s + chunk])
                grad_w.addmm_(prob.t(), hc)
                if grad_b is not None:
                    grad_b += prob.sum(dim=0)
        ctx.save_for_backward(grad_h, grad_w, grad_b)
        ctx.mark_non_differentiable(correct)
        return (loss / n).to(h.dtype), correct  # 0 hits: nan, as F.cross_entropy

    @staticmethod
    def backward(ctx, grad_loss, _grad_correct):
        grad_h, grad_w, grad_b = ctx.saved_tensors
        return (grad_h * grad_loss if ctx.needs_input_grad[0] else None,
                grad_w * grad_loss if ctx.needs_input_grad[1] else None,
                grad_b * grad_loss if grad_b is not None and ctx.needs_input_grad[2] else None, None, None)


def linear_cross_entropy(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, target: torch.Tensor,
                         *, chunk: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean cross-entropy of ``h @ weight.T + bias`` against `target`, number of hits whose argmax is the
    target) for (n, d) hidden states; equal to ``F.cross_entropy(F.linear(h, weight, bias), target)`` and its
    gradients. Targets must be class indices in range (no ignore_index, no weights, no smoothing)."""
    if h.dim() != 2 or target.shape != h.shape[:1]:
        raise ValueError(f"linear_cross_entropy: h must be (n, d) and target (n,), got {tuple(h.shape)} and "
                         f"{tuple(target.shape)}")
    if len(target) and (int(target.min()) < 0 or int(target.max()) >= weight.shape[0]):
        raise ValueError(f"linear_cross_entropy: targets outside [0, {weight.shape[0]})")
    return _LinearCrossEntropy.apply(h, weight, bias, target, chunk or chunk_rows(weight.shape[0]))
