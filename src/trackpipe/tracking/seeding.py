"""Track seeds (three hits) for EncDec: from the truth (the paper's protocol) or geometric (no truth).

Geometric seed finder, for tracks from (near) the origin:

1. doublets: hit pairs (a, b) on different layers with b farther from the origin, 0 < |b| - |a| <=
   `max_gap` mm, azimuth difference <= `max_dphi` and polar-angle difference <= `max_dtheta`;
2. triplets: doublets (a, b), (b, c) sharing b whose turning agrees with a helix through the origin:
   the signed curvature of the circle through (origin, a, b) and of (a, b, c) in the transverse
   plane differ by at most `curvature_tolerance` (1/mm) + `curvature_relative` x the larger one
   (zero for straight lines), and the polar angles of a, b, c stay within `max_dtheta`;
3. only triplets that start a chain (no accepted triplet (x, a, b) precedes them) are kept, and
   disjoint seeds are chosen greedily: innermost first, then shortest span, then best fit.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from .teacher import SEED_HITS, teacher_tracks

SEEDING = {
    "max_gap": 400.0,
    "max_dphi": 0.6,
    "max_dtheta": 0.05,
    "curvature_tolerance": 3e-4,
    "curvature_relative": 0.5,
}


def truth_seeds(particle_id: np.ndarray, xyz: np.ndarray) -> np.ndarray:
    """(S, 3) hit indices: the three hits closest to the origin of every particle with >= 3 hits."""
    _, seq, _ = teacher_tracks(np.zeros(len(particle_id), np.int64), np.asarray(particle_id),
                               np.linalg.norm(xyz, axis=1), SEED_HITS)
    return seq


def _signed_curvature(p, q, r):
    """Menger curvature of the triangle (p, q, r) in the transverse plane, signed by orientation."""
    u, v = q - p, r - q
    cross = u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]
    denom = np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1) * np.linalg.norm(r - p, axis=1)
    return 2 * cross / np.maximum(denom, 1e-12)


def geometric_seeds(xyz: np.ndarray, layer: np.ndarray | None = None, params: dict | None = None) -> np.ndarray:
    """(S, 3) hit indices of disjoint seed triplets, each ordered by distance from the origin."""
    p = {**SEEDING, **(params or {})}
    xyz = np.asarray(xyz, np.float64)
    n = len(xyz)
    layer = np.zeros(n, np.int64) if layer is None else np.asarray(layer)
    d = np.linalg.norm(xyz, axis=1)
    phi = np.arctan2(xyz[:, 1], xyz[:, 0])
    theta = np.arctan2(np.hypot(xyz[:, 0], xyz[:, 1]), xyz[:, 2])
    unit = xyz / np.maximum(d, 1e-9)[:, None]
    radius = 2 * np.sin(min(np.hypot(p["max_dphi"], p["max_dtheta"]), np.pi) / 2)
    pairs = cKDTree(unit).query_pairs(radius, output_type="ndarray")
    if len(pairs) == 0:
        return np.zeros((0, SEED_HITS), np.int64)
    a, b = pairs[:, 0], pairs[:, 1]
    swap = d[a] > d[b]
    a, b = np.where(swap, b, a), np.where(swap, a, b)
    dphi = np.abs(np.angle(np.exp(1j * (phi[b] - phi[a]))))
    ok = ((d[b] - d[a] > 0) & (d[b] - d[a] <= p["max_gap"]) & (layer[a] != layer[b])
          & (dphi <= p["max_dphi"]) & (np.abs(theta[b] - theta[a]) <= p["max_dtheta"]))
    a, b = a[ok], b[ok]
    order = np.argsort(a, kind="stable")
    a, b = a[order], b[order]
    # Join (a, b) with every doublet (b, c).
    lo, hi = np.searchsorted(a, b, "left"), np.searchsorted(a, b, "right")
    count = hi - lo
    first = np.repeat(np.arange(len(a)), count)
    second = np.repeat(lo - np.cumsum(np.r_[0, count[:-1]]), count) + np.arange(count.sum())
    ta, tb, tc = a[first], b[first], b[second]
    origin = np.zeros((len(ta), 2))
    k1 = _signed_curvature(origin, xyz[ta, :2], xyz[tb, :2])
    k2 = _signed_curvature(xyz[ta, :2], xyz[tb, :2], xyz[tc, :2])
    dk = np.abs(k1 - k2)
    fit = ((dk <= p["curvature_tolerance"] + p["curvature_relative"] * np.maximum(np.abs(k1), np.abs(k2)))
           & (np.abs(theta[tc] - theta[ta]) <= p["max_dtheta"]))
    ta, tb, tc, dk = ta[fit], tb[fit], tc[fit], dk[fit]
    if len(ta) == 0:
        return np.zeros((0, SEED_HITS), np.int64)
    # A triplet starts a chain unless some triplet ends with its first two hits.
    starts = ~np.isin(ta * n + tb, tb * n + tc)
    trip = np.stack([ta, tb, tc], axis=1)[starts]
    # Innermost first, then the shortest span (consecutive layers, no skipped hit), then the best fit.
    span = d[trip[:, 2]] - d[trip[:, 0]]
    rank = np.lexsort((dk[starts], span, d[trip[:, 0]]))
    return _greedy_disjoint(trip[rank], n)


def _greedy_disjoint(trip: np.ndarray, n_hits: int) -> np.ndarray:
    """Disjoint triplets, earlier rows winning conflicts (vectorised rounds: a triplet is accepted when
    it is the earliest remaining triplet on each of its three hits)."""
    chosen = []
    alive = np.ones(len(trip), bool)
    used = np.zeros(n_hits, bool)
    while alive.any():
        idx = np.flatnonzero(alive)
        best = np.full(n_hits, len(trip), np.int64)
        np.minimum.at(best, trip[idx].ravel(), np.repeat(idx, 3))
        win = idx[(best[trip[idx]] == idx[:, None]).all(axis=1)]
        chosen.append(win)
        used[trip[win].ravel()] = True
        alive &= ~used[trip].any(axis=1)
    out = trip[np.sort(np.concatenate(chosen))] if chosen else trip[:0]
    return out.astype(np.int64)
