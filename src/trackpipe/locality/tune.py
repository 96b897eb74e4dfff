"""Grid search of a clustering algorithm's parameters on a validation split.

Objective per region (barrel, endcap): the largest mean reconstructible ratio among the parameter sets whose
mean attention fraction is <= ``target_fraction``; if none meets the target, the set with the smallest
attention fraction is returned and marked infeasible. The regions are clustered independently, so one pass
over the grid (the same parameters in both regions) scores every candidate for both regions at once.
"""

from __future__ import annotations

import itertools

import numpy as np

from ..errors import ConfigError
from .clustering import DEFAULTS
from .metrics import locality_metrics
from .pipeline import REGIONS, cluster_event

# Small grids around the defaults (lengths in mm on the projection surfaces).
DEFAULT_GRIDS = {
    "dbscan": {"eps": [2.0, 3.0, 4.0, 6.0], "min_samples": [2, 3], "v_scale": [0.1, 0.25, 0.5]},
    "iterative_window": {"width_u": [6.0, 10.0, 16.0], "width_v": [40.0, 80.0, 160.0]},
    "density_peaks": {"d_c": [2.0, 4.0], "v_scale": [0.1, 0.25], "delta_min": [6.0, 12.0, 24.0]},
    "grid_window": {"width_u": [6.0, 10.0, 16.0], "width_v": [40.0, 80.0, 160.0]},
}


def grid_points(grid: dict) -> list[dict]:
    keys = sorted(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(list(grid[k]) for k in keys))]


def tune(events, algorithm: str, *, grid: dict | None = None, target_fraction: float = 0.0025,
         projection: dict | None = None, base_params: dict | None = None, metric_params: dict | None = None) -> dict:
    """Tune on ``events`` (a list of (hits, particles)); returns best params per region plus the full table.

    ``base_params`` are fixed keys shared by all candidates; ``grid`` maps keys to candidate lists.
    """
    if algorithm not in DEFAULTS:
        raise ConfigError(f"unknown clustering algorithm {algorithm!r}")
    grid = DEFAULT_GRIDS[algorithm] if grid is None else grid
    if not events:
        raise ConfigError("tuning needs at least one validation event")
    rows = []
    for cand in grid_points(grid):
        params = {**(base_params or {}), **cand}
        per_event = []
        for hits, particles in events:
            result = cluster_event(hits, algorithm, {r: params for r in REGIONS}, projection)
            per_event.append(locality_metrics(hits, particles, result, metric_params))
        row = {"params": params}
        for region in REGIONS:
            row[region] = {key: float(np.nanmean([m[region][key] for m in per_event]))
                           for key in ("reconstructible_ratio", "attention_fraction", "n_clusters",
                                       "cluster_dm_efficiency")}
        rows.append(row)
    best, feasible = {}, {}
    for region in REGIONS:
        ok = [r for r in rows if r[region]["attention_fraction"] <= target_fraction]
        feasible[region] = bool(ok)
        if ok:
            pick = max(ok, key=lambda r: (np.nan_to_num(r[region]["reconstructible_ratio"], nan=-1.0),
                                          -r[region]["attention_fraction"]))
        else:
            pick = min(rows, key=lambda r: r[region]["attention_fraction"])
        best[region] = {"params": pick["params"], **pick[region]}
    return {"algorithm": algorithm, "target_fraction": target_fraction, "best": best, "feasible": feasible,
            "table": rows}
