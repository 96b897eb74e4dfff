"""The machine's matrix-multiply rate for the model dtype: the reference the encoders are compared with.

``matmul_rate`` multiplies square matrices with ``torch.matmul`` (2·n³ FLOPs per product) and reports the
median GFLOP/s over repeats after warm-up, per size; ``peak`` is the best median over the sizes (BLAS
reaches its rate only once the matrices are large enough). Measured with the current torch thread count.
"""

from __future__ import annotations

import torch

from .measure import summarise, time_call

DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16, "float16": torch.float16}


def matmul_flops(n: int) -> int:
    return 2 * int(n) ** 3


class MatmulReference:
    """One n x n matmul of the model dtype, timed between the measurements it is compared with.

    On a shared machine the achievable rate drifts with the load; timing the reference in the same rounds
    as an encoder forward gives a fraction of peak that compares like with like.
    """

    def __init__(self, n: int = 1024, *, dtype: str = "float32", device="cpu", seed: int = 0):
        gen = torch.Generator().manual_seed(seed)
        self.n, self.device = int(n), torch.device(device)
        self.a = torch.randn(n, n, generator=gen).to(device=self.device, dtype=DTYPES[dtype])
        self.b = torch.randn(n, n, generator=gen).to(device=self.device, dtype=DTYPES[dtype])
        self.times: list[float] = []

    def __call__(self):
        return torch.matmul(self.a, self.b)

    def time_once(self) -> None:
        self.times.extend(time_call(self, repeats=1, warmup=0, device=self.device))

    def gflops(self) -> float:
        """Median rate over the timed calls so far."""
        return matmul_flops(self.n) / (summarise(self.times)["median"] * 1e-3) / 1e9


def matmul_rate(sizes=(512, 1024, 2048), *, dtype: str = "float32", device="cpu", repeats: int = 5,
                warmup: int = 1, seed: int = 0) -> dict:
    """{"peak_gflops", "dtype", "device", "threads", "sizes": [{"n", "ms_median", "gflops"}]}."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, not {dtype!r}")
    device = torch.device(device)
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for n in sizes:
        a = torch.randn(n, n, generator=gen).to(device=device, dtype=DTYPES[dtype])
        b = torch.randn(n, n, generator=gen).to(device=device, dtype=DTYPES[dtype])
        ms = summarise(time_call(lambda: torch.matmul(a, b), repeats=repeats, warmup=warmup, device=device))
        rows.append({"n": int(n), "ms_median": ms["median"], "gflops": matmul_flops(n) / (ms["median"] * 1e-3) / 1e9})
    return {"peak_gflops": max(r["gflops"] for r in rows), "dtype": dtype, "device": str(device),
            "threads": torch.get_num_threads(), "sizes": rows}
