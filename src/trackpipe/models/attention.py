"""Attention backends behind one call, in a small explicit table with what each one supports.

Every backend takes q, k, v of shape (batch, heads, hits, head_dim) and an `AttentionMask` and returns
the attention output in the same shape. Padded hits never act as keys; their own (query) outputs are
garbage that the heads and losses ignore via `AttentionMask.valid`.

Backends (see `BACKENDS`):

* ``sdpa``  -- `scaled_dot_product_attention` with a boolean key-padding mask; any device, any dtype,
  forward and backward. The reference path.
* ``flash`` -- the same call restricted to the flash kernel (CUDA, fp16/bf16; the paper's EncReg-FA).
  The flash kernel takes no mask, so a padded batch runs one call per event on its valid prefix (exact,
  as the paper's batch size 1). Without CUDA or in fp32 it falls back to ``sdpa`` with one notice.
* ``flex``  -- FlexAttention with a BlockMask: the padding mask built from per-block tables, or any
  BlockMask the caller puts in `AttentionMask.block_mask` (the locality work's cluster masks). Compiled
  when a compiler is available, with the sequence padded to a bucket of ``locality.flex`` so that the
  kernel compiles once per bucket, not once per batch length. On CPU there is no backward (torch 2.13)
  and eager flex materialises the full score matrix, so on CPU it is an inference path for small events.

* ``cluster-blocked`` -- attention only inside locality clusters, from the block tables in
  ``AttentionMask.extra["blocks"]`` (a `locality.blocks.ClusterBlocks` over the batch flattened to one
  sequence of B·N hits, padding hits in clusters of their own; see `train.locality`): padded cluster blocks
  through batched SDPA, forward and backward on any device (the CPU training path). On CUDA it runs the
  compiled FlexAttention path instead unless ``attention_options.on_cuda: blocked``.

``flex`` also takes the cluster tables: when ``AttentionMask.extra["blocks"]`` is set it attends inside
the clusters with the cluster BlockMask (built once per device from the tables, never from an N² mask).
"""

from __future__ import annotations

import functools
import logging
import math
import os
import shutil
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..schema import ATTENTION_FALLBACK as FALLBACK

log = logging.getLogger(__name__)


@dataclass
class AttentionMask:
    """Which hits are real, plus optional backend-specific structure shared by all layers.

    valid: (batch, hits) bool, True for real hits. Padding must be at the end of each row (the
        collate functions pad that way); the flash path relies on it.
    block_mask: a FlexAttention BlockMask to use instead of the padding one (e.g. cluster masks).
    extra: free-form per-batch data for registered backends (e.g. cluster ids, block tables).
    """

    valid: torch.Tensor
    block_mask: Any = None
    extra: dict = field(default_factory=dict)

    @property
    def lengths(self) -> torch.Tensor:
        return self.valid.sum(dim=1)

    @property
    def has_padding(self) -> bool:
        return bool((~self.valid).any())

    def to(self, device) -> "AttentionMask":
        return AttentionMask(self.valid.to(device), self.block_mask, self.extra)


AttentionFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, AttentionMask], torch.Tensor]


@dataclass(frozen=True)
class AttentionBackend:
    """One row of the backend table: a factory plus what the backend can do."""

    name: str
    build: Callable[[dict], AttentionFn]  # options -> attention function
    backward_on_cpu: bool  # can it be trained on CPU?
    needs_cuda: bool  # does it only do its own thing on CUDA (otherwise it falls back)?
    padding_mask: bool  # does it honour key padding in a batch?
    custom_masks: bool  # does it take masks beyond padding (AttentionMask.block_mask / extra)?
    doc: str
    pair_bias: bool = False  # does it add a per-pair score bias (AttentionMask.extra["pair_bias"])?


BACKENDS: dict[str, AttentionBackend] = {}


def register_backend(backend: AttentionBackend, *, replace: bool = False) -> None:
    if backend.name in BACKENDS and not replace:
        raise ConfigError(f"attention backend {backend.name!r} is already registered")
    BACKENDS[backend.name] = backend


def get_backend(name: str) -> AttentionBackend:
    try:
        return BACKENDS[name]
    except KeyError:
        raise ConfigError(f"unknown attention backend {name!r}; known: {sorted(BACKENDS)}") from None


def build_attention(name: str, options: dict | None = None) -> AttentionFn:
    return get_backend(name).build(dict(options or {}))


# --- sdpa -------------------------------------------------------------------------------------------

def _key_padding(mask: AttentionMask) -> torch.Tensor:
    return mask.valid[:, None, None, :]  # (B, 1, 1, N): broadcast over heads and queries


def sdpa_attention(q, k, v, mask: AttentionMask):
    attn_mask = _key_padding(mask) if mask.has_padding else None
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)


# --- flash ------------------------------------------------------------------------------------------

def per_event_unpadded(q, k, v, mask: AttentionMask, call) -> torch.Tensor:
    """Run `call(q, k, v)` on each event's valid prefix; padded query rows get zeros."""
    lengths = mask.lengths.tolist()
    if not all(bool(mask.valid[b, :n].all()) for b, n in enumerate(lengths)):
        raise ValueError("flash attention needs padding at the end of each event")
    out = torch.zeros_like(q)
    for b, n in enumerate(lengths):
        out[b:b + 1, :, :n] = call(q[b:b + 1, :, :n], k[b:b + 1, :, :n], v[b:b + 1, :, :n])
    return out


@functools.cache
def _notice_once(message: str) -> None:
    log.warning(message)


HALF_DTYPES = (torch.float16, torch.bfloat16)


def runs_flash(device_type: str, dtype: torch.dtype) -> bool:
    """Whether the flash backend runs the flash kernel here (else it falls back to sdpa)."""
    return device_type == "cuda" and dtype in HALF_DTYPES


def runs_cluster_flex(device_type: str, on_cuda: str) -> bool:
    """Whether the cluster-blocked backend runs compiled FlexAttention here (else its blocked SDPA)."""
    return device_type == "cuda" and on_cuda == "flex" and compiler_available("cuda")




def resolved_attention(name: str, options: dict | None, device_type: str, dtype: torch.dtype) -> str:
    """What backend `name` actually computes on `device_type` with activations of `dtype`, in words.

    The same decisions as the backends' own dispatch (`runs_flash`, `runs_cluster_flex`), so a table
    can mark EncReg-FA on a CPU (sdpa in fp32: the computation of EncReg) as a fallback.
    """
    precision = {torch.float16: "fp16", torch.bfloat16: "bf16"}.get(dtype, "fp32")
    if name == "flash" and not runs_flash(device_type, dtype):
        return f"sdpa {precision} ({FALLBACK} from flash: it needs CUDA with fp16/bf16, ran on {device_type})"
    if name == "cluster-blocked":
        on_cuda = (options or {}).get("on_cuda", "flex")
        return "flex (cluster-blocked)" if runs_cluster_flex(device_type, on_cuda) else f"cluster-blocked {precision}"
    return f"{name} {precision}"


def _build_flash(options: dict) -> AttentionFn:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    def flash(q, k, v, mask: AttentionMask):
        if not runs_flash(q.device.type, q.dtype):
            _notice_once(f"flash attention needs CUDA with fp16/bf16 (got {q.device.type}, {q.dtype}); "
                         "using sdpa instead")
            return sdpa_attention(q, k, v, mask)

        def call(qq, kk, vv):
            with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                return F.scaled_dot_product_attention(qq, kk, vv)

        if not mask.has_padding:
            return call(q, k, v)
        return per_event_unpadded(q, k, v, mask, call)

    return flash


# --- flex -------------------------------------------------------------------------------------------

def compiler_available(device_type: str) -> bool:
    """Can torch.compile generate kernels here (C++ compiler on CPU, triton on CUDA)?"""
    try:
        import torch._inductor  # noqa: F401
    except Exception:  # pragma: no cover - depends on the torch build
        return False
    if device_type == "cuda":
        from torch.utils._triton import has_triton

        return has_triton()
    return shutil.which(os.environ.get("CXX", "g++")) is not None


def padding_block_mask(valid: torch.Tensor, block_size: int = 128, length: int | None = None):
    """A FlexAttention BlockMask for key padding, built from per-block tables (no N x N evaluation).

    A key block is "full" when all its keys are real, "partial" when some are (the mask function then
    decides per key), and skipped when none are. Query blocks without a real hit visit no key block (their
    outputs are zeros, never used). ``length`` (>= N) pads the sequence to that many positions, e.g. a
    bucket of ``locality.flex`` so that the compiled kernel sees a few lengths only.
    """
    from torch.nn.attention.flex_attention import BlockMask

    B, N = valid.shape
    length = N if length is None else int(length)
    if length < N:
        raise ValueError(f"padding_block_mask: length {length} is shorter than the sequence ({N})")
    nb = math.ceil(length / block_size)
    padded = F.pad(valid, (0, nb * block_size - N))
    count = padded.view(B, nb, block_size).sum(-1)
    full = count == block_size
    partial = (count > 0) & ~full
    real_query = count > 0  # queries and keys are the same sequence

    def table(sel):
        # Selected block indices first (stable order), then the rest; the count says how many to read.
        order = torch.argsort((~sel).to(torch.int8), dim=1, stable=True).to(torch.int32)
        num = sel.sum(1).to(torch.int32)
        num = torch.where(real_query, num[:, None], 0).to(torch.int32)
        return num[:, None, :].contiguous(), order[:, None, None, :].expand(B, 1, nb, nb).contiguous()

    def mask_mod(b, h, q_idx, kv_idx):
        return padded[b, kv_idx]

    kv_num, kv_idx = table(partial)
    full_num, full_idx = table(full)
    return BlockMask.from_kv_blocks(kv_num, kv_idx, full_num, full_idx, BLOCK_SIZE=block_size,
                                    mask_mod=mask_mod, seq_lengths=(nb * block_size, nb * block_size))


def _build_flex(options: dict) -> AttentionFn:
    from ..locality.flex import bucket_length, flex as flex_call

    compile_mode = str(options.get("compile", "auto")).lower()
    if compile_mode not in ("auto", "always", "never"):
        raise ConfigError(f"flex compile option must be auto, always or never, not {compile_mode!r}")
    block_size = int(options.get("block_size", 128))

    def flex(q, k, v, mask: AttentionMask):
        if q.device.type == "cpu" and torch.is_grad_enabled() and q.requires_grad:
            raise ConfigError("FlexAttention has no backward on CPU (torch 2.13): train with the sdpa or "
                              "cluster-blocked backend; flex is for GPU training and inference")
        use_compile = compile_mode == "always" or (compile_mode == "auto" and compiler_available(q.device.type))
        if compile_mode == "always" and not compiler_available(q.device.type):
            raise ConfigError("flex compile=always but no compiler is available for torch.compile")
        blocks = mask.extra.get("blocks")
        if blocks is not None:
            return _on_flat_batch(q, k, v, lambda *qkv: _cluster_flex(*qkv, blocks, use_compile))
        if mask.block_mask is None:  # built once per batch (the mask object is shared by all layers)
            length = bucket_length(q.shape[2], block_size) if use_compile else None
            mask.block_mask = padding_block_mask(mask.valid, block_size, length)
        return flex_call(q, k, v, mask.block_mask, compiled=use_compile)

    return flex


# --- cluster-blocked ----------------------------------------------------------------------------------

def _on_flat_batch(q, k, v, call):
    """Run `call` on the batch flattened to one sequence (1, H, B·N, D); the block tables index that
    sequence (event b's hit i is position b·N + i), so events never attend to each other."""
    B, H, N, D = q.shape

    def flat(x):
        return x if B == 1 else x.transpose(0, 1).reshape(1, H, B * N, D)

    o = call(flat(q), flat(k), flat(v))
    return o if B == 1 else o.reshape(H, B, N, D).transpose(0, 1)


def _cluster_flex(q, k, v, blocks, use_compile: bool):
    from ..locality.attention import cluster_block_mask, flex_cluster_attention

    return flex_cluster_attention(q, k, v, cluster_block_mask(blocks, q.device), blocks=blocks, compiled=use_compile)


CLUSTER_OPTIONS = {"locality", "on_cuda"}


def _build_cluster_blocked(options: dict) -> AttentionFn:
    from ..locality.attention import cluster_blocked_attention

    unknown = set(options) - CLUSTER_OPTIONS
    if unknown:
        raise ConfigError(f"unknown cluster-blocked attention options {sorted(unknown)}; allowed: {sorted(CLUSTER_OPTIONS)}")
    on_cuda = options.get("on_cuda", "flex")
    if on_cuda not in ("flex", "blocked"):
        raise ConfigError(f"attention_options.on_cuda must be flex or blocked, not {on_cuda!r}")

    def cluster_blocked(q, k, v, mask: AttentionMask):
        blocks = mask.extra.get("blocks")
        if blocks is None:
            raise ConfigError("cluster-blocked attention needs block tables in AttentionMask.extra['blocks'] "
                              "(the training loop and predict attach them when the model has a locality section)")
        pair_bias, pair_values = mask.extra.get("pair_bias"), mask.extra.get("pair_values")
        if runs_cluster_flex(q.device.type, on_cuda):
            if pair_bias is not None or pair_values is not None:
                raise ConfigError("the compiled flex path has no pair bias: set attention_options.on_cuda: "
                                  "blocked for a model with a geometric pair bias")
            return _on_flat_batch(q, k, v, lambda *qkv: _cluster_flex(*qkv, blocks, True))
        return _on_flat_batch(q, k, v, lambda *qkv: cluster_blocked_attention(*qkv, blocks, pair_bias=pair_bias,
                                                                               pair_values=pair_values))

    return cluster_blocked


register_backend(AttentionBackend(
    "sdpa", lambda options: sdpa_attention, backward_on_cpu=True, needs_cuda=False, padding_mask=True,
    custom_masks=False, doc="scaled_dot_product_attention with a key-padding mask (reference path)"))
register_backend(AttentionBackend(
    "flash", _build_flash, backward_on_cpu=True, needs_cuda=True, padding_mask=True, custom_masks=False,
    doc="flash kernel on CUDA with fp16/bf16 (per-event calls when padded); sdpa elsewhere"))
register_backend(AttentionBackend(
    "flex", _build_flex, backward_on_cpu=False, needs_cuda=False, padding_mask=True, custom_masks=True,
    doc="FlexAttention with a BlockMask (padding or cluster masks), compiled when possible"))
register_backend(AttentionBackend(
    "cluster-blocked", _build_cluster_blocked, backward_on_cpu=True, needs_cuda=False, padding_mask=True,
    custom_masks=True, pair_bias=True,
    doc="attention inside locality clusters: padded cluster blocks + batched SDPA, optionally with a "
        "per-pair score bias (compiled flex on CUDA, which takes no pair bias)"))
