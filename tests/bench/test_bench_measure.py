"""Measurement helpers: statistics, call counting, memory peak, matmul rate arithmetic, power-law fits, tables."""

import math
import time

import numpy as np
import pandas as pd
import pytest

from trackpipe.bench.hardware import MatmulReference, matmul_flops, matmul_rate
from trackpipe.bench.measure import peak_memory_mb, summarise, time_call
from trackpipe.bench.scaling import exponents, scaling_config, scaling_table
from trackpipe.bench.table import bench_table, format_table
from trackpipe.errors import ConfigError
from trackpipe.plots.scaling import SCALING_COLUMNS


def test_summarise_matches_numpy():
    t = [5.0, 1.0, 9.0, 3.0, 7.0, 2.0, 10.0, 4.0, 8.0, 6.0]
    s = summarise(t)
    assert s == {"median": 5.5, "p90": pytest.approx(9.1), "n": 10}
    with pytest.raises(ValueError):
        summarise([])


def test_time_call_counts_warmup_and_keeps_results():
    calls = []
    results = []
    times = time_call(lambda: calls.append(1) or len(calls), repeats=3, warmup=2, results=results)
    assert len(calls) == 5 and len(times) == 3 and results == [3, 4, 5]
    assert all(t >= 0 for t in times)


def test_peak_memory_sees_a_large_temporary():
    def allocate():
        a = np.ones(16 * 2**20 // 8 * 4)  # 64 MB, touched
        time.sleep(0.05)
        return float(a[-1])

    assert peak_memory_mb(allocate) > 40
    assert peak_memory_mb(lambda: time.sleep(0.02)) < 40


def test_matmul_rate_arithmetic():
    r = matmul_rate((32, 64), repeats=2)
    for row in r["sizes"]:
        assert row["gflops"] == pytest.approx(matmul_flops(row["n"]) / (row["ms_median"] * 1e-3) / 1e9)
    assert r["peak_gflops"] == max(row["gflops"] for row in r["sizes"])
    ref = MatmulReference(32)
    ref.times = [2.0, 4.0, 3.0]
    assert ref.gflops() == pytest.approx(2 * 32**3 / 3e-3 / 1e9)


def _rows(k=1.5, model="m"):
    return [{"model": model, "size": f"{n} tracks", "n_tracks": n, "n_hits": 5.0 * n, "device": "cpu",
             "ms_median": (5.0 * n) ** k / 1e3, "ms_p90": (5.0 * n) ** k / 1e3 * 1.1, "peak_mb": 1.0, "score": None,
             "gflops": None, "ref_gflops": None} for n in (100, 1000, 4000, 10000)]


def test_exponents_recover_power_law_and_window():
    rows = _rows(1.5) + [dict(r, model="lin", ms_median=r["n_hits"] * 0.01) for r in _rows()]
    e = exponents(rows, window=(5000, 60000))
    assert e["m/cpu"]["k_all"] == pytest.approx(1.5) and e["m/cpu"]["k_window"] == pytest.approx(1.5)
    assert e["m/cpu"]["window_points"] == 3  # 5 000 (inclusive), 20 000 and 50 000 hits; not 500
    assert e["lin/cpu"]["k_all"] == pytest.approx(1.0)


def test_scaling_table_has_exactly_the_report_columns():
    rows = _rows() + [dict(_rows()[0], device="cuda")]
    t = scaling_table(rows)
    assert tuple(t.columns) == SCALING_COLUMNS and len(t) == 4


def test_bench_table_fraction_and_blanks():
    rows = _rows()
    rows[0].update(gflops=20.0, ref_gflops=80.0)
    rows[1].update(gflops=30.0)  # no reference timed alongside: falls back to the run's peak
    t = bench_table(rows, peak_gflops=60.0)
    assert t.frac_peak.iloc[0] == pytest.approx(0.25) and t.frac_peak.iloc[1] == pytest.approx(0.5)
    assert math.isnan(t.frac_peak.iloc[2]) and math.isnan(t.gpu_ms_median.iloc[0])
    text = format_table(t)
    assert "25%" in text and "nan" not in text.lower()


def test_config_rejects_unknown_keys_and_models():
    with pytest.raises(ConfigError):
        scaling_config({"bogus": 1})
    with pytest.raises(ConfigError):
        scaling_config({"models": ["no-such-model"]})
    cfg = scaling_config({"max_hits": {"enccla": 10}})
    assert cfg["max_hits"]["enccla"] == 10 and cfg["max_hits"]["encoder-dense"] == 20000
