"""The one bench table: a row per (model, event size), CPU and (when present) GPU times side by side.

Columns: model, dataset, hits/event, CPU ms/event (median, p90), GPU ms/event (CUDA events; blank without a
GPU), achieved GFLOP/s of the encoder forward and its fraction of the matmul rate timed in the same rounds
(only where the timed call is the forward itself), peak memory, and the TrackML score where the model has trained (or no)
weights and truth exists (the classical baseline; blank for freshly initialised encoders).
"""

from __future__ import annotations

import math

import pandas as pd

COLUMNS = ("model", "dataset", "hits/event", "cpu_ms_median", "cpu_ms_p90", "gpu_ms_median", "gflops",
           "frac_peak", "peak_mb", "score")


def bench_table(rows: list[dict], peak_gflops: float, *, dataset: str = "pixel <mu>=200") -> pd.DataFrame:
    if not rows:
        return pd.DataFrame(columns=COLUMNS)
    df = pd.DataFrame(rows)
    cpu = df[df.device == "cpu"].set_index(["model", "size"])
    gpu = df[df.device == "cuda"].set_index(["model", "size"])["ms_median"]
    out = pd.DataFrame({
        "model": cpu.index.get_level_values(0),
        "dataset": [f"{dataset}, {s}" for s in cpu.index.get_level_values(1)],
        "hits/event": cpu.n_hits.round().astype(int).to_numpy(),
        "cpu_ms_median": cpu.ms_median.to_numpy(),
        "cpu_ms_p90": cpu.ms_p90.to_numpy(),
        "gpu_ms_median": gpu.reindex(cpu.index).to_numpy(),
        "gflops": pd.to_numeric(cpu.gflops, errors="coerce").to_numpy(),
        "peak_mb": cpu.peak_mb.to_numpy(),
        "score": pd.to_numeric(cpu.score, errors="coerce").to_numpy(),
    })
    # fraction of the matmul rate timed in the same rounds as the row; the run's peak where there is none
    ref = pd.to_numeric(cpu.get("ref_gflops", pd.Series(math.nan, index=cpu.index)), errors="coerce").to_numpy()
    fallback = peak_gflops if peak_gflops and peak_gflops > 0 else math.nan
    out.insert(7, "frac_peak", out.gflops / pd.Series(ref).fillna(fallback).to_numpy())
    return out[list(COLUMNS)]


def format_table(table: pd.DataFrame) -> str:
    """Fixed-width text; missing values print as blanks (never as zeros)."""
    fmt = {"cpu_ms_median": "{:.1f}", "cpu_ms_p90": "{:.1f}", "gpu_ms_median": "{:.2f}", "gflops": "{:.1f}",
           "frac_peak": "{:.0%}", "peak_mb": "{:.1f}", "score": "{:.3f}"}
    shown = table.copy().astype(object)
    for col, f in fmt.items():
        shown[col] = [("" if v is None or (isinstance(v, float) and math.isnan(v)) else f.format(v)) for v in table[col]]
    return shown.to_string(index=False)
