"""Voxels for the sparse U-Net ([P1] §3.3.4): interpolated training points, voxelisation, voxel labels.

* `interpolate_tracks`: training-only extra points, `n_points` between each pair of consecutive hits
  of a track (hits ordered by distance from the origin), on a cubic spline through the track's hits
  parameterised by hit number (scipy `make_interp_spline`; quadratic/linear for 3/2-hit tracks).
  Tracks of equal length share the parameter grid, so one spline call handles all of them.
* `voxelise`: integer voxel coordinates floor(x * scale) (scale = voxels per mm), one row per distinct
  voxel and the voxel of every point.
* `voxel_labels`: per voxel and per parameter the most frequent class of its points (ties: lowest).
"""

from __future__ import annotations

import numpy as np
from scipy.interpolate import make_interp_spline

from .tracking.teacher import teacher_tracks


def interpolate_tracks(xyz: np.ndarray, particle_id: np.ndarray, n_points: int) -> tuple[np.ndarray, np.ndarray]:
    """(extra points (M, 3), index of the hit whose particle each point belongs to (M,))."""
    if n_points <= 0:
        return np.zeros((0, 3)), np.zeros(0, np.int64)
    _, seq, lengths = teacher_tracks(np.zeros(len(xyz), np.int64), np.asarray(particle_id),
                                     np.linalg.norm(xyz, axis=1), max_length=1 << 30, min_length=2)
    points, owner = [], []
    frac = np.arange(1, n_points + 1) / (n_points + 1)
    for L in np.unique(lengths):
        rows = seq[lengths == L, :L]                                    # (T, L) hit indices
        t = np.arange(L, dtype=np.float64)
        spline = make_interp_spline(t, np.moveaxis(xyz[rows], 1, 0), k=min(3, L - 1))  # y: (L, T, 3)
        at = (t[:-1, None] + frac[None]).ravel()                        # (L-1) * n_points parameters
        points.append(np.moveaxis(spline(at), 0, 1).reshape(-1, 3))     # (T * len(at), 3)
        owner.append(np.repeat(rows[:, 0], len(at)))
    return np.concatenate(points), np.concatenate(owner)


def voxelise(xyz: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """(distinct voxels (V, 3) int64, voxel index of every point (P,))."""
    cells = np.floor(np.asarray(xyz, np.float64) * scale).astype(np.int64)
    voxels, inverse = np.unique(cells, axis=0, return_inverse=True)
    return voxels, inverse.reshape(-1)


def voxel_labels(inverse: np.ndarray, classes: np.ndarray, n_voxels: int) -> np.ndarray:
    """(V, P) majority class per voxel of per-point classes (P points, P parameters)."""
    classes = np.asarray(classes, np.int64).reshape(len(inverse), -1)
    out = np.zeros((n_voxels, classes.shape[1]), np.int64)
    for j in range(classes.shape[1]):
        pairs, counts = np.unique(np.stack([inverse, classes[:, j]], axis=1), axis=0, return_counts=True)
        # Within each voxel: most counts first, lowest class on ties; keep the first row per voxel.
        order = np.lexsort((pairs[:, 1], -counts, pairs[:, 0]))
        first = order[np.r_[True, pairs[order][1:, 0] != pairs[order][:-1, 0]]]
        out[pairs[first, 0], j] = pairs[first, 1]
    return out
