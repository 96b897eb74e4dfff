"""Straight-line projection of pixel hits onto the locality surfaces (TrackFormers Part 2, seed 002 §2.2.1).

Every hit is mapped along the straight line from a vertex on the beam axis (the origin by default) onto a
closed "can": a cylinder of radius ``barrel_radius`` (coordinates u = R·phi, v = z on the cylinder) and two
planes at z = ±``endcap_z`` (coordinates u = x, v = y on the plane). A straight track from that vertex
therefore lands on one point whatever layer it crosses; curvature and the vertex offset spread it.

Region of a hit (``region_by``):
  * ``"surface"`` (default): the surface the line from the origin meets first, i.e. barrel iff
    |z|·R / r <= endcap_z. A track's hits share one direction, so they share one region.
  * ``"volume"``: TrackML volumes, barrel iff volume_id is in ``barrel_volumes``; endcap side from sign(z).

Endcap refinement (``refine_vertex_z``): for each cluster the hits are re-projected from candidate vertex
positions (0, 0, z0) and the z0 that gives the smallest angular spread of the cluster is kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from ..config import merge_section
from ..errors import ConfigError, DataError

BARREL, ENDCAP_NEG, ENDCAP_POS = 0, 1, 2

PROJECTION_DEFAULTS = {
    "barrel_radius": 91.0,      # mm, cylinder of the barrel surface
    "endcap_z": 920.0,          # mm, |z| of the two endcap planes
    "region_by": "surface",     # "surface" or "volume"
    "barrel_volumes": [8],      # used when region_by == "volume"
    "refine_regions": ["endcap"],  # regions whose clusters get the vertex-z scan ("barrel", "endcap")
    "vertex_z_min": -150.0,     # mm, candidate vertex positions for the scan
    "vertex_z_max": 150.0,
    "vertex_z_candidates": 31,
    "recluster": True,          # cluster again on the refined coordinates
}


def projection_params(params: dict | None) -> dict:
    """Defaults overlaid with `params`; unknown keys are an error (typos must not pass silently)."""
    out = merge_section(PROJECTION_DEFAULTS, params, "projection")
    if out["region_by"] not in ("surface", "volume"):
        raise ConfigError(f"projection.region_by must be 'surface' or 'volume', not {out['region_by']!r}")
    return out


@dataclass
class Projection:
    """Projected coordinates of N hits. ``u`` is periodic with ``period`` on the barrel only."""

    region: np.ndarray  # int8, BARREL / ENDCAP_NEG / ENDCAP_POS
    u: np.ndarray       # float64: R·phi (barrel) or x (endcap), mm
    v: np.ndarray       # float64: z on the cylinder (barrel) or y (endcap), mm
    period: float       # 2·pi·R, the period of u in the barrel

    def points(self, region: int) -> tuple[np.ndarray, np.ndarray]:
        """(indices of the region's hits, their (n, 2) coordinates)."""
        idx = np.flatnonzero(self.region == region)
        return idx, np.column_stack([self.u[idx], self.v[idx]])


def _xyz(hits, event=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cols = []
    for c in ("x", "y", "z"):
        if c not in hits:
            raise DataError("hits table lacks a coordinate column", event=event, column=c)
        a = np.asarray(hits[c], dtype=np.float64)
        if not np.all(np.isfinite(a)):
            raise DataError("non-finite hit coordinate", event=event, column=c)
        cols.append(a)
    return cols[0], cols[1], cols[2]


def project_to_surfaces(hits, params: dict | None = None, *, event=None) -> Projection:
    """Project hits (a DataFrame or dict with x, y, z [, volume_id]) onto the barrel cylinder / endcap planes."""
    p = projection_params(params)
    x, y, z = _xyz(hits, event)
    R, Z = float(p["barrel_radius"]), float(p["endcap_z"])
    r = np.hypot(x, y)
    if np.any(r <= 0):
        raise DataError("hit on the beam axis (r = 0) cannot be projected", event=event, column="x")
    if p["region_by"] == "surface":
        barrel = np.abs(z) * R <= Z * r
    else:
        if "volume_id" not in hits:
            raise DataError("region_by='volume' needs volume_id", event=event, column="volume_id")
        barrel = np.isin(np.asarray(hits["volume_id"]), np.asarray(p["barrel_volumes"]))
    if np.any(~barrel & (z == 0)):
        raise DataError("endcap hit at z = 0 cannot be projected onto an endcap plane", event=event, column="z")
    region = np.where(barrel, BARREL, np.where(z < 0, ENDCAP_NEG, ENDCAP_POS)).astype(np.int8)
    u = np.empty_like(x)
    v = np.empty_like(x)
    u[barrel] = R * np.arctan2(y[barrel], x[barrel])
    v[barrel] = z[barrel] * (R / r[barrel])
    e = ~barrel
    scale = Z / np.abs(z[e])
    u[e] = x[e] * scale
    v[e] = y[e] * scale
    return Projection(region=region, u=u, v=v, period=2.0 * np.pi * R)


def _reproject(x, y, z, r, region, z0, R, Z):
    """Coordinates of hits seen from vertex (0, 0, z0), shape (n_hits, n_candidates)."""
    z0 = z0[None, :]
    barrel = (region == BARREL)[:, None]
    # barrel: v = z0 + (z - z0)·R/r, u unchanged (phi does not depend on the vertex z)
    v_b = z0 + (z[:, None] - z0) * (R / r[:, None])
    # endcap: the plane sits at ±Z; scale t = (±Z - z0)/(z - z0)
    plane = np.where(z >= 0, Z, -Z)[:, None]
    dz = z[:, None] - z0
    # barrel rows do not use t; an endcap hit exactly at a candidate z0 is never aligned (t -> inf), so it
    # gets a huge (finite) scale that makes that candidate lose
    dz = np.where(barrel, 1.0, np.where(dz == 0, 1e-9, dz))
    t = (plane - z0) / dz
    u = np.where(barrel, np.broadcast_to(R * np.arctan2(y, x)[:, None], v_b.shape), x[:, None] * t)
    v = np.where(barrel, v_b, y[:, None] * t)
    return u, v


def refine_vertex_z(hits, proj: Projection, hit_index: np.ndarray, cluster_id: np.ndarray,
                    params: dict | None = None, *, event=None) -> tuple[Projection, np.ndarray]:
    """Re-project each cluster of the refined regions from the candidate vertex z0 that aligns it best.

    ``hit_index``/``cluster_id`` are the cluster memberships (a hit in several clusters takes the z0 of the
    first, in membership order). Alignment = the cluster's spread (sum of per-axis variances; on the endcap
    planes divided by the mean squared radius, since z0 rescales the plane); ties and single-hit clusters
    keep the candidate nearest z0 = 0. Returns the refined projection and the
    chosen z0 per hit (0 for hits not refined). Cost: O(n_hits · n_candidates), vectorised.
    """
    p = projection_params(params)
    regions = set()
    for name in p["refine_regions"]:
        regions |= {BARREL} if name == "barrel" else {ENDCAP_NEG, ENDCAP_POS} if name == "endcap" else set()
    x, y, z = _xyz(hits, event)
    n = len(x)
    # one membership per hit (the first) decides which cluster's z0 the hit follows
    first = np.full(n, -1, dtype=np.int64)
    order = np.argsort(hit_index, kind="stable")
    hi, pos = np.unique(hit_index[order], return_index=True)
    first[hi] = cluster_id[order][pos]
    sel = np.flatnonzero(np.isin(proj.region, list(regions)) & (first >= 0))
    z0_hit = np.zeros(n)
    if len(sel) == 0:
        return proj, z0_hit
    cand = np.linspace(float(p["vertex_z_min"]), float(p["vertex_z_max"]), int(p["vertex_z_candidates"]))
    if np.any(np.abs(cand) >= 0.5 * float(p["endcap_z"])):
        raise ConfigError("vertex_z candidates must stay well inside the endcap planes (|z0| < endcap_z / 2)")
    R, Z = float(p["barrel_radius"]), float(p["endcap_z"])
    xs, ys, zs = x[sel], y[sel], z[sel]
    u, v = _reproject(xs, ys, zs, np.hypot(xs, ys), proj.region[sel], cand, R, Z)
    _, local = np.unique(first[sel], return_inverse=True)
    n_cl = local.max() + 1
    counts = np.bincount(local, minlength=n_cl).astype(np.float64)
    ub = proj.region[sel] == BARREL
    if ub.any():
        # unwrap barrel R·phi around the cluster's first hit so that a cluster at phi = ±pi is not spread
        ref = np.zeros(n_cl)
        ref[local[::-1]] = u[::-1, 0]
        d = u - ref[local][:, None]
        u = np.where(ub[:, None], ref[local][:, None] + (d + proj.period / 2) % proj.period - proj.period / 2, u)
    member = sparse.csr_matrix((np.ones(len(sel)), (local, np.arange(len(sel)))), shape=(n_cl, len(sel)))
    spread = np.zeros((n_cl, len(cand)))
    for a in (u, v):
        mean = (member @ a) / counts[:, None]
        spread += (member @ (a * a)) / counts[:, None] - mean**2
    # Endcap: moving z0 rescales the whole plane, so compare spreads relative to the cluster's mean squared
    # radius (scale-free). Barrel: z0 shifts and stretches v only; the absolute spread is compared.
    endcap_cluster = np.zeros(n_cl, bool)
    endcap_cluster[local[~ub]] = True
    m2 = (member @ (u * u + v * v)) / counts[:, None]
    spread = np.where(endcap_cluster[:, None], spread / np.maximum(m2, 1e-12), spread)
    # ties (and single-hit clusters) prefer the candidate closest to z0 = 0
    prefer = np.abs(cand)[None, :] * 1e-12
    best = np.argmin(spread + prefer, axis=1)
    pick = best[local]
    rows = np.arange(len(sel))
    out_u, out_v = proj.u.copy(), proj.v.copy()
    out_u[sel] = u[rows, pick]
    out_v[sel] = v[rows, pick]
    z0_hit[sel] = cand[pick]
    return Projection(region=proj.region, u=out_u, v=out_v, period=proj.period), z0_hit
