"""The one place that imports spconv (an optional extra) and patches it for CUDA-less torch.

spconv 2.3.8's backward asks for the current CUDA stream (`get_current_stream`, which calls
`torch.cuda.current_stream()`) even for CPU tensors, and a CPU-only torch raises "Torch not compiled
with CUDA enabled" (REFERENCE 10.5). When CUDA is unavailable we rebind that name in the two modules
that call it to return 0 (the default stream, which the CPU kernels ignore). With CUDA present nothing
is touched, so GPU nodes run spconv unchanged. tests/unet/test_spconv_compat.py fails when the shim
stops being needed (an upstream fix) or stops working.
"""

from __future__ import annotations

import torch

from ..errors import ConfigError

STREAM_MODULES = ("spconv.pytorch.ops", "spconv.pytorch.cppcore")


def _default_stream() -> int:
    return 0


def apply_cpu_backward_shim() -> bool:
    """Patch spconv's stream lookup when CUDA is unavailable; True iff patched (idempotent)."""
    if torch.cuda.is_available():
        return False
    import importlib

    for name in STREAM_MODULES:
        module = importlib.import_module(name)
        if not hasattr(module, "get_current_stream"):
            raise RuntimeError(f"{name} no longer has get_current_stream: revisit models/spconv_compat.py")
        module.get_current_stream = _default_stream
    return True


def import_spconv(*, shim: bool = True):
    """`spconv.pytorch`, with the CPU backward shim applied; a clear error when spconv is missing."""
    try:
        import spconv.pytorch as spconv
    except ImportError as exc:
        raise ConfigError("model 'unet' needs the optional package spconv (CPU: pip install spconv==2.3.8; "
                          "CUDA 12 nodes: pip install spconv-cu120)") from exc
    if shim:
        apply_cpu_backward_shim()
    return spconv
