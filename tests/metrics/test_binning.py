"""Binned rates with bootstrap intervals over events."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from trackpipe.metrics import binned_efficiency, binned_rates, bootstrap_ratio, match_tables
from trackpipe.metrics.binning import bin_counts
from metrics_synthetic import random_event, random_tracks, submission_for


def synthetic_particles(n_events, seed=0, per_event=40, eff=0.7):
    """A particle table: pT, eta per particle, matched with a pT-dependent probability."""
    rng = np.random.default_rng(seed)
    n = n_events * per_event
    pt = rng.exponential(1.5, n)
    p_match = eff * (1 - np.exp(-pt))
    return pd.DataFrame({"event_id": np.repeat(np.arange(n_events), per_event), "pt": pt,
                         "eta": rng.uniform(-4, 4, n), "matched": rng.random(n) < p_match})


def test_binned_value_and_counts_match_direct_computation():
    t = synthetic_particles(50)
    edges = [0.0, 0.5, 1.0, 2.0, 5.0]
    out = binned_efficiency(t, variable="pt", edges=edges, numerator="matched", n_resamples=50)
    for i, row in out.iterrows():
        inside = (t.pt >= edges[i]) & (t.pt < edges[i + 1])
        assert row.n == inside.sum()
        assert row.value == pytest.approx(t.matched[inside].mean())
    assert list(out.columns) == ["lo_edge", "hi_edge", "value", "ci_lo", "ci_hi", "n"]


def test_bootstrap_equals_explicit_resampling_loop():
    rng = np.random.default_rng(3)
    num = rng.integers(0, 5, size=(30, 3)).astype(float)
    den = num + rng.integers(0, 5, size=(30, 3))
    value, lo, hi = bootstrap_ratio(num, den, n_resamples=200, seed=11)
    # Same draws, drawn and used one resample at a time.
    draws = np.random.default_rng(11).integers(0, 30, size=(200, 30))
    ratios = np.array([num[d].sum(0) / den[d].sum(0) for d in draws])
    assert np.allclose(value, num.sum(0) / den.sum(0))
    assert np.allclose(lo, np.percentile(ratios, 16, axis=0))
    assert np.allclose(hi, np.percentile(ratios, 84, axis=0))


def test_interval_contains_estimate_is_reproducible_and_narrows_with_more_events():
    edges = [0.0, 1.0, 3.0, 20.0]
    small = synthetic_particles(40, seed=1)
    large = synthetic_particles(640, seed=1)
    a = binned_efficiency(small, variable="pt", edges=edges, numerator="matched", seed=7)
    b = binned_efficiency(small, variable="pt", edges=edges, numerator="matched", seed=7)
    c = binned_efficiency(small, variable="pt", edges=edges, numerator="matched", seed=8)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a.ci_lo, c.ci_lo)
    assert ((a.ci_lo <= a.value) & (a.value <= a.ci_hi)).all()
    big = binned_efficiency(large, variable="pt", edges=edges, numerator="matched", seed=7)
    assert ((big.ci_lo <= big.value) & (big.value <= big.ci_hi)).all()
    # 16x the events: the interval shrinks about 4x; demand at least 2.5x in every bin.
    assert ((big.ci_hi - big.ci_lo) * 2.5 < (a.ci_hi - a.ci_lo)).all()


def test_empty_bins_and_out_of_range_values():
    t = pd.DataFrame({"event_id": [0, 0, 1], "pt": [0.5, 50.0, np.nan], "matched": [True, False, True]})
    out = binned_efficiency(t, variable="pt", edges=[0, 1, 2, 10], numerator="matched", n_resamples=20)
    assert out.n.tolist() == [1, 0, 0]  # 50 GeV is beyond the last edge, NaN is dropped
    assert out.value[0] == 1.0 and out[["value", "ci_lo", "ci_hi"]].iloc[1:].isna().all().all()


def test_bin_counts_by_event():
    num, den = bin_counts(np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.6, 0.7]), np.array([1, 0, 1, 1]),
                          np.array([True, True, True, False]), [0, 0.5, 1], 2)
    assert num.tolist() == [[1, 0], [0, 1]] and den.tolist() == [[1, 1], [0, 1]]


def test_binned_rates_long_format_and_selection_per_variable():
    rng = np.random.default_rng(9)
    frames = [random_event(rng, event_id=e, n_particles=40) for e in range(6)]
    hits = pd.concat([f[0] for f in frames], ignore_index=True)
    particles = pd.concat([f[1] for f in frames], ignore_index=True)
    sub = submission_for(hits, random_tracks(rng, hits, "mixed"))
    ptab, ctab = match_tables(hits, particles, sub)
    out = binned_rates(ptab, ctab, variables=("pt", "eta"), n_resamples=100, seed=0)
    assert list(out.columns) == ["metric", "variable", "lo_edge", "hi_edge", "value", "ci_lo", "ci_hi", "n"]
    assert set(out.metric) == {"dm_efficiency", "perfect_efficiency", "lhc_efficiency", "fake_rate", "duplicate_rate"}
    total = out[(out.metric == "dm_efficiency") & (out.variable == "all")].iloc[0]
    assert total.n == ptab.selected.sum()
    assert total.value == pytest.approx(ptab.dm_matched[ptab.selected].mean())
    # Binning in pT drops the pT cut (bins below 0.9 GeV are filled); binning in eta keeps it.
    pt_rows = out[(out.metric == "dm_efficiency") & (out.variable == "pt")]
    assert pt_rows[pt_rows.hi_edge <= 0.9].n.sum() > 0
    eta_rows = out[(out.metric == "dm_efficiency") & (out.variable == "eta")]
    assert eta_rows.n.sum() == total.n
    fake = out[(out.metric == "fake_rate") & (out.variable == "all")].iloc[0]
    assert fake.value == pytest.approx(1 - ctab.dm_match[ctab.selected].mean())
