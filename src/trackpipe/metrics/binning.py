"""Rates binned in a particle variable, with bootstrap confidence intervals over events.

A binned rate in bin b is sum_e num[e, b] / sum_e den[e, b] (pooled over events e). Its confidence
interval comes from a bootstrap over events: each resample draws the events with replacement, which
amounts to integer event multiplicities w[r, e], so every resample of every bin of every metric is one
matrix product w @ num and w @ den (no loop over resamples or events). The interval is the central
`ci` quantile range of the resampled ratios (default 68 %: the 16th and 84th percentiles); resamples
with an empty denominator are ignored. The seed fixes the resamples, so results are reproducible and
every metric and bin of one call sees the same resamples.

Besides the gnn_tracking rates (`efficiency`), two rates in TrackFormers Part 1's sense (its Fig. 4)
are binned from the tables of `paper_tables` (REFERENCE.md 2.2, 3.2):

* `fit_accuracy`: FitAccuracy (the TrackML score) per majority particle, hit-weighted. A track is good
  iff it has at least `min_track_hits` hits (the paper: "reconstructed tracks with four or more hits
  are considered"), its majority particle is not noise and the double-majority condition holds; a
  particle's numerator is the truth weight of its hits inside its good track (at most one: the good
  track holds more than half of them), its denominator the truth weight of all its hits. So the bin
  value is sum(good weight) / sum(weight) over the particles in the bin (TrackML weights; on REDVID
  every track hit weighs 1, i.e. FitAccuracy proper). Pooled over events, unlike the headline
  `fit_accuracy`/`trackml_score`, which are means of per-event scores without the minimum length.
* `track_fake_rate`: the paper's "fraction of predicted tracks that do not correspond to true
  tracks": every predicted track (track id >= 0) with at least `min_track_hits` hits counts, and it
  is fake unless it is double-majority matched to a particle (noise-majority tracks are fakes; in
  gnn_tracking's `fake_rate` they are never selected, hence never fake). A track is binned in the
  kinematics of the particle holding most of its non-noise hits (ties: lowest particle id); a track
  of noise hits only has no kinematics and enters the "all" bin only.

Their selection (`PAPER_CUTS`: `pt_min`, `max_eta`, both off by default as in the paper's Fig. 4, and
`min_track_hits`) is separate from the gnn_tracking cuts; as there, binning in a variable drops that
variable's own cut.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .alignment import AlignedHits, align
from .efficiency import DEFAULT_CUTS, particle_kinematics, selection
from .tracks import double_majority, particle_hit_counts, track_arrays

# Default bin edges: pT in GeV, eta, phi in rad, vz in mm. Bins are [lo, hi); values outside are dropped.
DEFAULT_BINS = {
    "pt": (0.0, 0.3, 0.5, 0.7, 0.9, 1.2, 1.5, 2.0, 3.0, 5.0, 10.0, 100.0),
    "eta": tuple(np.round(np.linspace(-4.0, 4.0, 17), 6)),
    "phi": tuple(np.linspace(-np.pi, np.pi, 13)),
    "vz": tuple(np.linspace(-150.0, 150.0, 13)),
}
# "all": one bin holding every selected object, i.e. the headline rate with its interval.
TOTAL = "all"

# Selection of the TrackFormers Part 1 rates (module docstring); None = no cut.
PAPER_CUTS = {"pt_min": None, "max_eta": None, "min_track_hits": 4}

# metric -> (table, numerator, denominator weight or None = 1 per row): "particles" rates are per
# selected particle, "clusters" rates per selected cluster (binned in the majority particle's
# variables); "fit" (per particle) and "tracks" (per predicted track) are the tables of `paper_tables`.
BINNED_METRICS = {
    "dm_efficiency": ("particles", lambda t: t.dm_matched.to_numpy(bool), None),
    "perfect_efficiency": ("particles", lambda t: t.perfect_matched.to_numpy(bool), None),
    "lhc_efficiency": ("clusters", lambda t: t.lhc_match.to_numpy(bool), None),
    "fake_rate": ("clusters", lambda t: ~t.dm_match.to_numpy(bool), None),
    "duplicate_rate": ("clusters", lambda t: t.duplicate.to_numpy(bool), None),
    "fit_accuracy": ("fit", lambda t: t.good_weight.to_numpy(np.float64), lambda t: t.weight.to_numpy(np.float64)),
    "track_fake_rate": ("tracks", lambda t: ~t.matched.to_numpy(bool), None),
}
GNN_TRACKING_METRICS = ("dm_efficiency", "perfect_efficiency", "lhc_efficiency", "fake_rate", "duplicate_rate")
PAPER_METRICS = ("fit_accuracy", "track_fake_rate")

BINNED_COLUMNS = ("metric", "variable", "lo_edge", "hi_edge", "value", "ci_lo", "ci_hi", "n")

# Bound on the size of one block of resample weights (resamples x events), to cap memory.
_BLOCK_ENTRIES = 4_000_000


def bin_counts(event: np.ndarray, values: np.ndarray, numerator: np.ndarray, mask: np.ndarray, edges,
               n_events: int, denominator: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(events x bins) numerator and denominator sums of the rows in `mask`, binned in `values`.

    `denominator`: per-row weight of the denominator (default 1 per row, i.e. a count)."""
    edges = np.asarray(edges, dtype=np.float64)
    n_bins = len(edges) - 1
    b = np.searchsorted(edges, values, side="right") - 1
    keep = mask & (b >= 0) & (b < n_bins) & np.isfinite(values)
    flat = event[keep] * n_bins + b[keep]
    size = n_events * n_bins
    num = np.bincount(flat, weights=numerator[keep].astype(np.float64), minlength=size).reshape(n_events, n_bins)
    den_w = None if denominator is None else np.asarray(denominator, np.float64)[keep]
    den = np.bincount(flat, weights=den_w, minlength=size).astype(np.float64).reshape(n_events, n_bins)
    return num, den


def bin_entries(values: np.ndarray, mask: np.ndarray, edges) -> np.ndarray:
    """Rows of `mask` per bin of `values` (the objects behind a bin, whatever their weights)."""
    edges = np.asarray(edges, dtype=np.float64)
    b = np.searchsorted(edges, values, side="right") - 1
    keep = mask & (b >= 0) & (b < len(edges) - 1) & np.isfinite(values)
    return np.bincount(b[keep], minlength=len(edges) - 1).astype(np.int64)


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


def paper_tables(hits: pd.DataFrame, particles: pd.DataFrame, submission: pd.DataFrame, *,
                 min_track_hits: int = PAPER_CUTS["min_track_hits"]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The per-particle and per-track tables of the TrackFormers Part 1 rates (module docstring).

    `hits`: event_id, hit_id, particle_id, weight (the hit set the metrics refer to); `particles`:
    event_id, particle_id, px, py, pz, vz; `submission`: event_id, hit_id, track_id, one row per hit.

    fit (one row per particle with hits): event_id, particle_id, weight (truth weight of its hits),
    good_weight (weight of its hits in its good track, 0 without one), pt, eta, phi, vz.
    tracks (one row per predicted track): event_id, track_id, size, counted (track id >= 0 and size >=
    `min_track_hits`), matched (counted, non-noise majority, double majority), particle_id (the particle
    holding most of its non-noise hits, 0 if none) and that particle's pt, eta, phi, vz (NaN if none).
    """
    if min_track_hits < 1:
        raise ValueError(f"min_track_hits must be >= 1, not {min_track_hits}")
    aligned = align(hits, submission)
    ids = aligned.event_ids
    t = track_arrays(aligned)
    counted = (t["track_id"] >= 0) & (t["nhits"] >= min_track_hits)
    matched = counted & (t["major_particle_id"] != 0) & double_majority(t["major_nhits"], t["nhits"],
                                                                          t["major_particle_nhits"])
    p_ev, p_pid, _, group = particle_hit_counts(aligned.event, aligned.particle_id)
    p_weight = np.bincount(group, weights=aligned.weight, minlength=len(p_pid))
    fit = pd.DataFrame({"event_id": ids[p_ev], "particle_id": p_pid, "weight": p_weight})
    good = pd.DataFrame({"event_id": ids[t["event"][matched]], "particle_id": t["major_particle_id"][matched],
                         "good_weight": t["major_weight"][matched]})
    fit = fit[fit.particle_id != 0].merge(good, how="left", on=["event_id", "particle_id"], validate="one_to_one")
    fit["good_weight"] = fit.good_weight.fillna(0.0)
    kin = particle_kinematics(particles)
    fit = fit.merge(kin, how="left", on=["event_id", "particle_id"], validate="one_to_one").reset_index(drop=True)

    # Leading particle of each track among its non-noise hits (the track's kinematics for binning).
    real = aligned.particle_id != 0
    lead = track_arrays(AlignedHits(ids, aligned.event[real], aligned.hit_id[real], aligned.particle_id[real],
                                    aligned.track_id[real], None, {}))
    lead = pd.DataFrame({"event_id": ids[lead["event"]], "track_id": lead["track_id"],
                         "particle_id": lead["major_particle_id"]})
    tracks = pd.DataFrame({"event_id": ids[t["event"]], "track_id": t["track_id"], "size": t["nhits"],
                           "counted": counted, "matched": matched})
    tracks = tracks.merge(lead, how="left", on=["event_id", "track_id"], validate="one_to_one")
    tracks["particle_id"] = tracks.particle_id.fillna(0).astype(np.int64)
    tracks = tracks.merge(kin, how="left", on=["event_id", "particle_id"], validate="many_to_one")
    return fit, tracks.reset_index(drop=True)


def paper_selection(table: pd.DataFrame, *, pt_min=PAPER_CUTS["pt_min"], max_eta=PAPER_CUTS["max_eta"],
                    ignore=()) -> np.ndarray:
    """Rows of a `paper_tables` table in the denominator: counted tracks (every particle of `fit`),
    with the optional pT / |eta| cuts on the (leading) particle; a track without a particle fails any
    cut that is set. `ignore` names cuts to skip when binning in that variable."""
    sel = table["counted"].to_numpy(bool).copy() if "counted" in table.columns else np.ones(len(table), bool)
    if pt_min is not None and "pt" not in ignore:
        sel &= np.nan_to_num(table["pt"].to_numpy(np.float64), nan=-np.inf) >= pt_min
    if max_eta is not None and "eta" not in ignore:
        sel &= np.abs(np.nan_to_num(table["eta"].to_numpy(np.float64), nan=np.inf)) < max_eta
    return sel


def binned_rates(particles: pd.DataFrame, clusters: pd.DataFrame, *, variables=("pt", "eta"), bins=None,
                 metrics=None, pt_min=DEFAULT_CUTS["pt_min"], max_eta=DEFAULT_CUTS["max_eta"],
                 n_resamples: int = 1000, seed: int = 0, ci: float = 0.68, include_total: bool = True,
                 event_ids=None, fit: pd.DataFrame | None = None, tracks: pd.DataFrame | None = None,
                 paper_cuts: dict | None = None) -> pd.DataFrame:
    """Efficiencies, fake/duplicate rates and the paper's FitAccuracy / fake rate binned in particle
    variables, tidy long format.

    `particles`, `clusters`: the tables of `efficiency.match_tables`; `fit`, `tracks` (optional): those
    of `paper_tables`. For each variable, objects pass their selection (`efficiency.selection` with
    `pt_min`/`max_eta`; `paper_selection` with `paper_cuts`, default `PAPER_CUTS`) except the cut on
    that variable itself (so the pT plot extends below the pT threshold, as in gnn_tracking). `metrics`:
    names of `BINNED_METRICS` (default: every one whose table is given). `bins` maps variable -> edges
    (defaults: `DEFAULT_BINS`). With `include_total`, variable "all" gives the headline rate in one bin
    with its interval. `event_ids`: events to resample (default: all events of either table).

    Returns columns metric, variable, lo_edge, hi_edge, value, ci_lo, ci_hi, n (the objects in the
    denominator: particles or tracks; for the weighted fit_accuracy the particles, not their weight).
    """
    bins = {**DEFAULT_BINS, **(bins or {})}
    cuts = {**PAPER_CUTS, **(paper_cuts or {})}
    tables = {"particles": particles, "clusters": clusters}
    tables |= {k: t for k, t in (("fit", fit), ("tracks", tracks)) if t is not None}
    if metrics is None:
        metrics = [m for m, (which, _, _) in BINNED_METRICS.items() if which in tables]
    for metric in metrics:
        if metric not in BINNED_METRICS:
            raise ValueError(f"unknown binned metric {metric!r}; known: {sorted(BINNED_METRICS)}")
        if BINNED_METRICS[metric][0] not in tables:
            raise ValueError(f"binned metric {metric!r} needs the {BINNED_METRICS[metric][0]!r} table")
    if event_ids is None:
        event_ids = np.unique(np.concatenate([t.event_id.to_numpy(np.int64) for t in tables.values()]))
    ids = np.asarray(event_ids, dtype=np.int64)
    codes = {k: np.searchsorted(ids, t.event_id.to_numpy(np.int64)) for k, t in tables.items()}
    columns = list(variables) + ([TOTAL] if include_total else [])
    blocks, rows = [], []
    for metric in metrics:
        which, numerator_of, denominator_of = BINNED_METRICS[metric]
        t = tables[which]
        numerator = numerator_of(t)
        denominator = None if denominator_of is None else denominator_of(t)
        for variable in columns:
            ignore = () if variable == TOTAL else (variable,)
            if which in ("fit", "tracks"):
                mask = paper_selection(t, pt_min=cuts["pt_min"], max_eta=cuts["max_eta"], ignore=ignore)
            else:
                mask = selection(t, pt_min=pt_min, max_eta=max_eta, ignore=ignore)
            if variable == TOTAL:
                edges, values = np.array([-np.inf, np.inf]), np.zeros(len(t))
            else:
                edges, values = np.asarray(bins[variable], np.float64), t[variable].to_numpy(np.float64)
            num, den = bin_counts(codes[which], values, numerator, mask, edges, len(ids), denominator)
            blocks.append((num, den))
            rows.append(pd.DataFrame({"metric": metric, "variable": variable, "lo_edge": edges[:-1],
                                      "hi_edge": edges[1:], "n": bin_entries(values, mask, edges)}))
    if not rows:
        return pd.DataFrame(columns=list(BINNED_COLUMNS))
    num = np.concatenate([b[0] for b in blocks], axis=1)
    den = np.concatenate([b[1] for b in blocks], axis=1)
    value, lo, hi = bootstrap_ratio(num, den, n_resamples=n_resamples, seed=seed, ci=ci)
    out = pd.concat(rows, ignore_index=True)
    out["value"], out["ci_lo"], out["ci_hi"] = value, lo, hi
    return out[list(BINNED_COLUMNS)]
