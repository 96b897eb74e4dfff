"""Rates binned in a particle variable, with bootstrap confidence intervals over events.

A binned rate in bin b is sum_e num[e, b] / sum_e den[e, b] (pooled over events e). Its confidence
interval comes from a bootstrap over events: each resample draws the events with replacement, which
amounts to integer event multiplicities w[r, e], so every resample of every bin of every metric is one
matrix product w @ num and w @ den (no loop over resamples or events). The interval is the central
`ci` quantile range of the resampled ratios (default 68 %: the 16th and 84th percentiles); resamples
with an empty denominator are ignored. The seed fixes the resamples, so results are reproducible and
every metric and bin of one call sees the same resamples.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .efficiency import DEFAULT_CUTS, selection

# Default bin edges: pT in GeV, eta, phi in rad, vz in mm. Bins are [lo, hi); values outside are dropped.
DEFAULT_BINS = {
    "pt": (0.0, 0.3, 0.5, 0.7, 0.9, 1.2, 1.5, 2.0, 3.0, 5.0, 10.0, 100.0),
    "eta": tuple(np.round(np.linspace(-4.0, 4.0, 17), 6)),
    "phi": tuple(np.linspace(-np.pi, np.pi, 13)),
    "vz": tuple(np.linspace(-150.0, 150.0, 13)),
}
# "all": one bin holding every selected object, i.e. the headline rate with its interval.
TOTAL = "all"

# metric -> (table, numerator): "particles" rates are per selected particle, "clusters" rates per
# selected cluster (binned in the majority particle's variables).
BINNED_METRICS = {
    "dm_efficiency": ("particles", lambda t: t.dm_matched.to_numpy(bool)),
    "perfect_efficiency": ("particles", lambda t: t.perfect_matched.to_numpy(bool)),
    "lhc_efficiency": ("clusters", lambda t: t.lhc_match.to_numpy(bool)),
    "fake_rate": ("clusters", lambda t: ~t.dm_match.to_numpy(bool)),
    "duplicate_rate": ("clusters", lambda t: t.duplicate.to_numpy(bool)),
}

# Bound on the size of one block of resample weights (resamples x events), to cap memory.
_BLOCK_ENTRIES = 4_000_000


def bin_counts(event: np.ndarray, values: np.ndarray, numerator: np.ndarray, mask: np.ndarray, edges,
               n_events: int) -> tuple[np.ndarray, np.ndarray]:
    """(events x bins) numerator and denominator counts of the rows in `mask`, binned in `values`."""
    edges = np.asarray(edges, dtype=np.float64)
    n_bins = len(edges) - 1
    b = np.searchsorted(edges, values, side="right") - 1
    keep = mask & (b >= 0) & (b < n_bins) & np.isfinite(values)
    flat = event[keep] * n_bins + b[keep]
    size = n_events * n_bins
    num = np.bincount(flat, weights=numerator[keep].astype(np.float64), minlength=size).reshape(n_events, n_bins)
    den = np.bincount(flat, minlength=size).astype(np.float64).reshape(n_events, n_bins)
    return num, den


def bootstrap_ratio(num: np.ndarray, den: np.ndarray, *, n_resamples: int = 1000, seed: int = 0,
                    ci: float = 0.68) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Point estimate and central `ci` bootstrap interval of sum(num)/sum(den) per column.

    `num`, `den`: (events x columns). Returns (value, ci_lo, ci_hi), NaN where undefined.
    """
    if not 0 < ci < 1:
        raise ValueError(f"ci must be in (0, 1), not {ci}")
    n_events, n_cols = den.shape
    with np.errstate(invalid="ignore", divide="ignore"):
        total_den = den.sum(0)
        value = np.where(total_den > 0, num.sum(0) / total_den, np.nan)
    if n_events == 0 or n_resamples <= 0:
        nan = np.full(n_cols, np.nan)
        return value, nan, nan.copy()
    rng = np.random.default_rng(seed)
    ratios = np.empty((n_resamples, n_cols))
    block = max(1, _BLOCK_ENTRIES // n_events)
    for start in range(0, n_resamples, block):
        r = min(block, n_resamples - start)
        draws = rng.integers(0, n_events, size=(r, n_events))
        rows = np.repeat(np.arange(r), n_events)
        w = np.bincount(rows * n_events + draws.ravel(), minlength=r * n_events).reshape(r, n_events)
        w = w.astype(np.float64)
        b_num, b_den = w @ num, w @ den
        with np.errstate(invalid="ignore", divide="ignore"):
            ratios[start:start + r] = np.where(b_den > 0, b_num / b_den, np.nan)
    q = [(1 - ci) / 2 * 100, (1 + ci) / 2 * 100]
    lo, hi = np.full(n_cols, np.nan), np.full(n_cols, np.nan)
    defined = np.isfinite(ratios).any(0)
    if defined.any():
        lo[defined], hi[defined] = np.nanpercentile(ratios[:, defined], q, axis=0)
    return value, lo, hi


def binned_efficiency(table: pd.DataFrame, *, variable: str, edges, numerator, mask=None, n_resamples: int = 1000,
                      seed: int = 0, ci: float = 0.68, event_ids=None) -> pd.DataFrame:
    """Any per-row rate of `table` (rows with event_id and `variable`) binned in `variable`.

    `numerator`: bool array (or column name) of rows counted as success; `mask`: rows in the
    denominator (default all). Returns lo_edge, hi_edge, value, ci_lo, ci_hi, n (denominator count).
    `event_ids`: the events to resample (default those of the table; include events without rows).
    """
    if isinstance(numerator, str):
        numerator = table[numerator].to_numpy(bool)
    mask = np.ones(len(table), bool) if mask is None else np.asarray(mask, bool)
    ids = np.unique(table.event_id) if event_ids is None else np.asarray(event_ids)
    event = np.searchsorted(ids, table.event_id.to_numpy())
    num, den = bin_counts(event, table[variable].to_numpy(np.float64), np.asarray(numerator), mask, edges, len(ids))
    value, lo, hi = bootstrap_ratio(num, den, n_resamples=n_resamples, seed=seed, ci=ci)
    edges = np.asarray(edges, dtype=np.float64)
    return pd.DataFrame({"lo_edge": edges[:-1], "hi_edge": edges[1:], "value": value, "ci_lo": lo, "ci_hi": hi,
                         "n": den.sum(0).astype(np.int64)})


def binned_rates(particles: pd.DataFrame, clusters: pd.DataFrame, *, variables=("pt", "eta"), bins=None,
                 metrics=tuple(BINNED_METRICS), pt_min=DEFAULT_CUTS["pt_min"], max_eta=DEFAULT_CUTS["max_eta"],
                 n_resamples: int = 1000, seed: int = 0, ci: float = 0.68, include_total: bool = True,
                 event_ids=None) -> pd.DataFrame:
    """Efficiencies and fake/duplicate rates binned in particle variables, tidy long format.

    `particles`, `clusters`: the tables of `efficiency.match_tables`. For each variable, objects pass
    the selection of `efficiency.selection` except the cut on that variable itself (so the pT plot
    extends below the pT threshold, as in gnn_tracking). `bins` maps variable -> edges (defaults:
    `DEFAULT_BINS`). With `include_total`, variable "all" gives the headline rate in one bin with its
    interval. `event_ids`: events to resample (default: all events of either table).

    Returns columns metric, variable, lo_edge, hi_edge, value, ci_lo, ci_hi, n.
    """
    bins = {**DEFAULT_BINS, **(bins or {})}
    if event_ids is None:
        event_ids = np.union1d(particles.event_id.unique(), clusters.event_id.unique())
    ids = np.asarray(event_ids, dtype=np.int64)
    tables = {"particles": particles, "clusters": clusters}
    codes = {k: np.searchsorted(ids, t.event_id.to_numpy(np.int64)) for k, t in tables.items()}
    columns = list(variables) + ([TOTAL] if include_total else [])
    blocks, rows = [], []
    for metric in metrics:
        which, numerator_of = BINNED_METRICS[metric]
        t = tables[which]
        numerator = numerator_of(t)
        for variable in columns:
            if variable == TOTAL:
                edges, values = np.array([-np.inf, np.inf]), np.zeros(len(t))
                mask = selection(t, pt_min=pt_min, max_eta=max_eta)
            else:
                edges, values = np.asarray(bins[variable], np.float64), t[variable].to_numpy(np.float64)
                mask = selection(t, pt_min=pt_min, max_eta=max_eta, ignore=(variable,))
            num, den = bin_counts(codes[which], values, numerator, mask, edges, len(ids))
            blocks.append((num, den))
            rows.append(pd.DataFrame({"metric": metric, "variable": variable, "lo_edge": edges[:-1],
                                      "hi_edge": edges[1:]}))
    if not rows:
        return pd.DataFrame(columns=["metric", "variable", "lo_edge", "hi_edge", "value", "ci_lo", "ci_hi", "n"])
    num = np.concatenate([b[0] for b in blocks], axis=1)
    den = np.concatenate([b[1] for b in blocks], axis=1)
    value, lo, hi = bootstrap_ratio(num, den, n_resamples=n_resamples, seed=seed, ci=ci)
    out = pd.concat(rows, ignore_index=True)
    out["value"], out["ci_lo"], out["ci_hi"] = value, lo, hi
    out["n"] = den.sum(0).astype(np.int64)
    return out
