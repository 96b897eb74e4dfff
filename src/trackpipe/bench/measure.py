"""Timing and memory measurement shared by the benchmarks.

Times are wall-clock medians and 90th percentiles over repeats taken after warm-up calls (the machine is
shared, so single timings mean little). On CUDA the device time comes from CUDA events around the call.
Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` above the allocation before the call; on CPU the
peak resident set size above the RSS before the call, sampled by a thread every ``interval`` seconds
(torch has no CPU allocator statistics). Freed heap is returned to the OS first (``malloc_trim``) so the
baseline is not inflated by memory cached from earlier calls.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import threading
import time

import numpy as np


def summarise(times_ms) -> dict:
    """Median and 90th percentile (linear interpolation) of a list of times."""
    t = np.asarray(list(times_ms), float)
    if t.size == 0:
        raise ValueError("no times to summarise")
    return {"median": float(np.median(t)), "p90": float(np.percentile(t, 90)), "n": int(t.size)}


def time_call(fn, *, repeats: int = 5, warmup: int = 1, device=None, results: list | None = None) -> list[float]:
    """Milliseconds of `repeats` calls of `fn()` after `warmup` untimed calls.

    With a CUDA device the time is measured with CUDA events (device time of the queued work). The
    timed calls' return values are appended to `results` if given (so a score needs no extra call).
    """
    if repeats < 1:
        raise ValueError("repeats must be >= 1")
    for _ in range(warmup):
        fn()
    cuda = device is not None and getattr(device, "type", str(device)) == "cuda"
    out = []
    for _ in range(repeats):
        value, ms = _time_cuda(fn) if cuda else _time_host(fn)
        out.append(ms)
        if results is not None:
            results.append(value)
    return out


def _time_host(fn):
    t0 = time.perf_counter()
    value = fn()
    return value, 1e3 * (time.perf_counter() - t0)


def _time_cuda(fn):
    import torch

    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    value = fn()
    end.record()
    torch.cuda.synchronize()
    return value, float(start.elapsed_time(end))


@functools.cache
def _libc():
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:  # pragma: no cover - non-glibc platforms
        return None


def release_free_heap() -> None:
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def rss_bytes() -> int:
    """Current resident set size of this process (Linux /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):  # pragma: no cover - non-Linux
        return 0


def peak_memory_mb(fn, *, device=None, interval: float = 0.002) -> float:
    """Peak memory (MB) that one call of `fn()` needs above what was allocated before it."""
    if device is not None and getattr(device, "type", str(device)) == "cuda":
        import torch

        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20
    release_free_heap()
    base = rss_bytes()
    peak = [base]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], rss_bytes())
            stop.wait(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        fn()
    finally:
        peak[0] = max(peak[0], rss_bytes())
        stop.set()
        sampler.join()
    return max(peak[0] - base, 0) / 2**20
