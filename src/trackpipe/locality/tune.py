"""Grid search of a clustering algorithm's parameters on a validation split.

Objective: the largest mean (over events) whole-event reconstructible ratio among the (barrel, endcap)
parameter pairs whose mean whole-event attention fraction is <= ``target_fraction``; ties go to the smaller
fraction. If no pair meets the target, the pair with the smallest fraction is returned, marked infeasible.

The barrel and the endcaps are clustered independently, so each region's metrics depend only on its own
parameters: the search clusters every event once per ``max(len(barrel grid), len(endcap grid))`` (the two
grids cycled side by side) and combines the region sums (contained tracks, tracks, sum of cluster sizes²)
arithmetically for all pairs.
"""

from __future__ import annotations

import itertools

import numpy as np

from ..errors import ConfigError
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
    "grid_window": {"barrel": {"width_u": [5.0, 6.0, 8.0], "width_v": [150.0, 200.0, 300.0], "overlap_u": [0.5]},
                    "endcap": {"width_u": [5.0, 6.0, 8.0], "width_v": [5.0, 6.0, 8.0], "overlap_u": [0.5],
                               "overlap_v": [0.5]}},
}


def grid_points(grid: dict) -> list[dict]:
    keys = sorted(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(list(grid[k]) for k in keys))]


def tune(events, algorithm: str, *, grid: dict | None = None, target_fraction: float = 0.0025,
         projection: dict | None = None, metric_params: dict | None = None) -> dict:
    """Tune on ``events`` (a list of (hits, particles)).

    ``grid`` = {"barrel": {key: [values]}, "endcap": {key: [values]}} (default ``DEFAULT_GRIDS``). Returns
    {"params": {"barrel": ..., "endcap": ...}, "reconstructible_ratio", "attention_fraction", "feasible",
    "table": per-region rows of every candidate}.
    """
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
    for i in range(n_runs):
        pick = {r: i % len(cands[r]) for r in REGIONS}
        params = {r: cands[r][pick[r]] for r in REGIONS}
        for e, (hits, particles) in enumerate(events):
            m = locality_metrics(hits, particles, cluster_event(hits, algorithm, params, projection), metric_params)
            n_hits[e] = m["all"]["n_hits"]
            for r in REGIONS:
                if i >= len(cands[r]):
                    continue  # this region's grid is exhausted; its candidate was already scored
                mr = m[r]
                sums[r][pick[r], e] = (np.nan_to_num(mr["reconstructible_ratio"]) * mr["n_tracks"], mr["n_tracks"],
                                       np.nan_to_num(mr["attention_fraction"]) * mr["n_hits"] ** 2)
                table[r][pick[r]].append(mr)
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
    rows = {r: [{"params": cands[r][j], **{k: float(np.nanmean([m[k] for m in table[r][j]]))
                                            for k in ("reconstructible_ratio", "attention_fraction", "n_clusters",
                                                      "cluster_dm_efficiency")}}
                for j in range(len(cands[r]))] for r in REGIONS}
    return {"algorithm": algorithm, "target_fraction": target_fraction,
            "params": {"barrel": cands["barrel"][ib], "endcap": cands["endcap"][ie]},
            "reconstructible_ratio": float(ratio[ib, ie]), "attention_fraction": float(fraction[ib, ie]),
            "feasible": bool(feasible.any()), "table": rows}
