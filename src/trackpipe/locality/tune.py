"""Grid search of a clustering algorithm's parameters on a validation split.

Objectives (``objective``):

* ``oracle_dm`` (default, issue 15): per region, the largest mean (over events) oracle DM efficiency
  (``metrics.locality_metrics``: the project's track formation on a perfect embedding) among the
  candidates whose mean attention fraction *of that region* is <= ``target_fraction``; ties go to the
  smaller fraction. A region without a feasible candidate gets its smallest-fraction candidate and the
  result is marked infeasible. This is the ceiling the neighbourhoods put on the tracker, at the budget.
* ``reconstructible`` (seed 002): the largest mean whole-event reconstructible ratio among the (barrel,
  endcap) pairs whose mean whole-event attention fraction is <= ``target_fraction``; ties go to the
  smaller fraction. If no pair meets the target, the pair with the smallest fraction is returned, marked
  infeasible. (The ratio counts a 2/2 split that no track can match: prefer ``oracle_dm``.)

The barrel and the endcaps are clustered independently, so each region's metrics depend only on its own
parameters: the search clusters every event once per ``max(len(barrel grid), len(endcap grid))`` (the two
grids cycled side by side) and combines the region sums (contained tracks, tracks, sum of cluster sizes²)
arithmetically for all pairs.
"""

from __future__ import annotations

import itertools

import numpy as np

from ..errors import ConfigError
from ..progress import progress
from .clustering import DEFAULTS
from .metrics import locality_metrics
from .pipeline import REGIONS, cluster_event

# Small grids per algorithm and region (lengths in mm on the projection surfaces).
DEFAULT_GRIDS = {
    "dbscan": {"barrel": {"eps": [0.5, 1.0], "min_samples": [3, 5], "v_scale": [0.01, 0.02]},
               "endcap": {"eps": [0.75, 1.0, 1.5], "min_samples": [3, 5], "v_scale": [1.0]}},
    "iterative_window": {"barrel": {"width_u": [6.0, 8.0, 10.0], "width_v": [200.0, 300.0]},
                         "endcap": {"width_u": [6.0, 8.0, 10.0], "width_v": [6.0, 8.0, 10.0]}},
    "density_peaks": {"barrel": {"d_c": [1.0, 2.0], "v_scale": [0.02, 0.05], "delta_min": [4.0]},
                      "endcap": {"d_c": [1.0, 2.0], "v_scale": [1.0], "delta_min": [4.0, 8.0]}},
    "grid_window": {"barrel": {"width_u": [3.0, 3.5, 4.0], "width_v": [110.0, 130.0, 160.0], "overlap_u": [0.5],
                               "overlap_v": [0.5]},
                    "endcap": {"width_u": [3.0, 3.5, 4.0], "width_v": [3.0, 3.5, 4.0], "overlap_u": [0.5],
                               "overlap_v": [0.5]}},
}


def grid_points(grid: dict) -> list[dict]:
    keys = sorted(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(list(grid[k]) for k in keys))]


OBJECTIVES = ("oracle_dm", "reconstructible")
ROW_KEYS = ("reconstructible_ratio", "full_containment", "attention_fraction", "n_clusters", "cluster_dm_efficiency")


def tune(events, algorithm: str, *, grid: dict | None = None, target_fraction: float = 0.0025,
         projection: dict | None = None, metric_params: dict | None = None, objective: str = "oracle_dm") -> dict:
    """Tune on ``events`` (a list of (hits, particles)).

    ``grid`` = {"barrel": {key: [values]}, "endcap": {key: [values]}} (default ``DEFAULT_GRIDS``). Returns
    {"algorithm", "objective", "target_fraction", "params": {"barrel": ..., "endcap": ...}, "feasible",
    "table": per-region rows of every candidate (means over events)} plus, for ``reconstructible``, the
    chosen pair's whole-event "reconstructible_ratio" and "attention_fraction", and for ``oracle_dm`` the
    chosen candidate's row per region under "regions".
    """
    if objective not in OBJECTIVES:
        raise ConfigError(f"tuning objective must be one of {list(OBJECTIVES)}, not {objective!r}")
    if algorithm not in DEFAULTS:
        raise ConfigError(f"unknown clustering algorithm {algorithm!r}")
    grid = DEFAULT_GRIDS[algorithm] if grid is None else grid
    if set(grid) != set(REGIONS):
        raise ConfigError(f"a tuning grid needs one entry per region {list(REGIONS)}")
    if not events:
        raise ConfigError("tuning needs at least one validation event")
    cands = {r: grid_points(grid[r]) for r in REGIONS}
    n_runs = max(len(c) for c in cands.values())
    # per region, candidate, event: contained tracks, tracks, sum of sizes², plus the event's hit count
    sums = {r: np.zeros((len(cands[r]), len(events), 3)) for r in REGIONS}
    n_hits = np.zeros(len(events))
    table = {r: [[] for _ in cands[r]] for r in REGIONS}
    for i in progress(range(n_runs), desc=f"tune {algorithm}", unit="candidate"):
        pick = {r: i % len(cands[r]) for r in REGIONS}
        params = {r: cands[r][pick[r]] for r in REGIONS}
        for e, (hits, particles) in enumerate(events):
            m = locality_metrics(hits, particles, cluster_event(hits, algorithm, params, projection), metric_params,
                                 oracle=objective == "oracle_dm")
            n_hits[e] = m["all"]["n_hits"]
            for r in REGIONS:
                if i >= len(cands[r]):
                    continue  # this region's grid is exhausted; its candidate was already scored
                mr = m[r]
                sums[r][pick[r], e] = (np.nan_to_num(mr["reconstructible_ratio"]) * mr["n_tracks"], mr["n_tracks"],
                                       np.nan_to_num(mr["attention_fraction"]) * mr["n_hits"] ** 2)
                table[r][pick[r]].append(mr)
    keys = ROW_KEYS + (("oracle_dm_efficiency",) if objective == "oracle_dm" else ())
    rows = {r: [{"params": cands[r][j], **{k: _mean([m[k] for m in table[r][j]]) for k in keys}}
                for j in range(len(cands[r]))] for r in REGIONS}
    out = {"algorithm": algorithm, "objective": objective, "target_fraction": target_fraction, "table": rows}
    if objective == "oracle_dm":
        chosen = {r: _best_at_budget(rows[r], target_fraction) for r in REGIONS}
        return {**out, "params": {r: rows[r][j]["params"] for r, (j, _) in chosen.items()},
                "feasible": all(ok for _, ok in chosen.values()),
                "regions": {r: {**rows[r][j], "feasible": ok} for r, (j, ok) in chosen.items()}}
    b, en = sums["barrel"][:, None], sums["endcap"][None, :]        # (nb, 1, E, 3), (1, ne, E, 3)
    tot = b + en
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.nanmean(np.where(tot[..., 1] > 0, tot[..., 0] / tot[..., 1], np.nan), axis=-1)
    fraction = np.mean(tot[..., 2] / np.maximum(n_hits, 1) ** 2, axis=-1)
    ratio = np.nan_to_num(ratio, nan=-1.0)
    feasible = fraction <= target_fraction
    if feasible.any():
        score = np.where(feasible, ratio, -np.inf)
        best = np.flatnonzero(score == score.max())
        flat = best[np.argmin(fraction.ravel()[best])]
    else:
        flat = int(np.argmin(fraction))
    ib, ie = np.unravel_index(flat, fraction.shape)
    return {**out, "params": {"barrel": cands["barrel"][ib], "endcap": cands["endcap"][ie]},
            "reconstructible_ratio": float(ratio[ib, ie]), "attention_fraction": float(fraction[ib, ie]),
            "feasible": bool(feasible.any())}


def _mean(values) -> float:
    """Mean over events of the finite values (nan when none: e.g. a region without selected particles)."""
    a = np.asarray(values, dtype=np.float64)
    a = a[np.isfinite(a)]
    return float(a.mean()) if len(a) else float("nan")


def _best_at_budget(rows: list[dict], target_fraction: float) -> tuple[int, bool]:
    """(index of the row with the best oracle DM among those within the budget (ties: smaller fraction),
    feasible); without a feasible row the smallest-fraction row, infeasible."""
    dm = np.nan_to_num(np.array([r["oracle_dm_efficiency"] for r in rows]), nan=-1.0)
    fraction = np.nan_to_num(np.array([r["attention_fraction"] for r in rows]), nan=np.inf)
    ok = fraction <= target_fraction
    if not ok.any():
        return int(np.argmin(fraction)), False
    best = np.flatnonzero(ok & (dm == dm[ok].max()))
    return int(best[np.argmin(fraction[best])]), True


TUNE_SPLIT_DEFAULTS = {"split": "val", "max_events": 1, "target_fraction": 0.0025, "objective": "oracle_dm",
                       "grids": {}}


def tune_on_split(store, algorithms, section: dict | None, params: dict | None = None, *, volumes=(7, 8, 9)) -> dict:
    """Tune every algorithm on the events of a sibling split of ``store`` (``section["split"]``, default
    ``val``: the dataset directory holds train/val/test stores side by side), so the test split the study
    reports on is never used to choose its own parameters. ``section`` keys: ``TUNE_SPLIT_DEFAULTS``
    (``grids``: {algorithm: grid} overriding ``DEFAULT_GRIDS``). Returns {algorithm: tune result}.
    """
    from pathlib import Path

    from .events import open_events, pixel_hits

    sec = {**TUNE_SPLIT_DEFAULTS, **(section or {})}
    unknown = set(section or {}) - set(TUNE_SPLIT_DEFAULTS)
    if unknown:
        raise ConfigError(f"unknown locality tune keys {sorted(unknown)}; allowed: {sorted(TUNE_SPLIT_DEFAULTS)}")
    params = params or {}
    ids, read = open_events(Path(store).parent / str(sec["split"]))
    ids = ids[:sec["max_events"]] if sec["max_events"] else ids
    if not ids:
        raise ConfigError(f"the tuning split {sec['split']!r} beside {store} holds no events")
    events = []
    for eid in ids:
        ev = read(eid)
        events.append((pixel_hits(ev.hits, volumes, event=eid), ev.particles))
    return {algo: tune(events, algo, grid=(sec["grids"] or {}).get(algo), target_fraction=float(sec["target_fraction"]),
                       projection=params.get("projection"), metric_params=params.get("metrics"),
                       objective=sec["objective"])
            for algo in algorithms}
