"""One event through the locality stage: projection, clustering per region, optional vertex-z refinement.

``cluster_event(hits, algorithm, params, projection=None) -> LocalityResult``

``params`` holds the algorithm's keys per region: ``{"barrel": {...}, "endcap": {...}}`` (missing regions or
keys take ``REGION_DEFAULTS``, then the algorithm defaults). The barrel is clustered with u periodic; each endcap plane separately.
Cluster ids are global (0..n_clusters-1) and every cluster lies in one region.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from .clustering import cluster_points
from .projection import BARREL, ENDCAP_NEG, ENDCAP_POS, Projection, project_to_surfaces, projection_params, refine_vertex_z

REGIONS = ("barrel", "endcap")

# Per-region starting values, tuned on the stand-in dense event (benchmarks/bench_locality.py): barrel tracks
# are narrow in R·phi (< 5 mm) but long in z on the cylinder (vertex-z spread × R/r, up to ~200 mm); endcap
# tracks are compact in (x, y). User parameters override these key by key.
REGION_DEFAULTS = {
    "dbscan": {"barrel": {"eps": 0.5, "min_samples": 3, "v_scale": 0.01},
               "endcap": {"eps": 1.0, "min_samples": 3, "v_scale": 1.0}},
    "iterative_window": {"barrel": {"width_u": 8.0, "width_v": 300.0}, "endcap": {"width_u": 8.0, "width_v": 8.0}},
    "density_peaks": {"barrel": {"d_c": 2.0, "v_scale": 0.02, "delta_min": 4.0},
                      "endcap": {"d_c": 1.0, "v_scale": 1.0, "delta_min": 4.0}},
    # Windows overlapping by half along both axes (every hit in 4 windows): a track cut by one window's edge
    # is whole in a shifted one, and track formation joins the pieces through the shared hits (connected
    # components over all neighbourhoods), so a particle needs only a chain of shared windows, not one
    # window. Barrel: half of 3.5 mm in R·phi covers the bending of pT > 0.9 GeV tracks between
    # neighbouring layers, half of 130 mm in z on the cylinder the vertex-z shift between the outer layers
    # (0.5·|z0|). Oracle DM ~0.98 (barrel) / ~0.99 (endcap) at attention fractions ~0.0024 / ~0.0022 on
    # simulated <mu> = 200 events (benchmarks/bench_neighbourhoods.py, benchmarks/README.md).
    "grid_window": {"barrel": {"width_u": 3.5, "width_v": 130.0, "overlap_u": 0.5, "overlap_v": 0.5},
                    "endcap": {"width_u": 3.5, "width_v": 3.5, "overlap_u": 0.5, "overlap_v": 0.5}},
}
_SURFACES = ((BARREL, "barrel"), (ENDCAP_NEG, "endcap"), (ENDCAP_POS, "endcap"))


@dataclass
class LocalityResult:
    hit_index: np.ndarray      # int64 memberships: hit hit_index[i] is in cluster cluster_id[i]
    cluster_id: np.ndarray     # int64, 0..n_clusters-1
    n_hits: int
    n_clusters: int
    hit_region: np.ndarray     # int8 per hit: 0 barrel, 1 endcap
    cluster_region: np.ndarray  # int8 per cluster: 0 barrel, 1 endcap
    projection: Projection
    seconds: dict = field(default_factory=dict)  # projection, barrel, endcap (clustering incl. refinement), total


def region_params(algorithm: str, params: dict | None) -> dict:
    params = dict(params or {})
    unknown = set(params) - set(REGIONS)
    if unknown:
        raise ConfigError(f"clustering params for {algorithm} take regions {list(REGIONS)}, got {sorted(unknown)}")
    defaults = REGION_DEFAULTS.get(algorithm, {})
    return {r: {**defaults.get(r, {}), **(params.get(r) or {})} for r in REGIONS}


def _cluster_surfaces(proj: Projection, surfaces, algorithm, rparams, seconds):
    idx_parts, cl_parts, reg_parts, offset = [], [], [], 0
    for code, name in surfaces:
        t0 = time.perf_counter()
        idx, pts = proj.points(code)
        m = cluster_points(pts, algorithm, rparams[name], period=proj.period if code == BARREL else None)
        idx_parts.append(idx[m.index])
        cl_parts.append(m.cluster + offset)
        reg_parts.append(np.full(m.n_clusters, 0 if code == BARREL else 1, np.int8))
        offset += m.n_clusters
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - t0
    return idx_parts, cl_parts, reg_parts


def cluster_event(hits, algorithm: str, params: dict | None = None, projection: dict | None = None,
                  *, event=None) -> LocalityResult:
    t_start = time.perf_counter()
    pp = projection_params(projection)
    rparams = region_params(algorithm, params)
    proj = project_to_surfaces(hits, pp, event=event)
    seconds = {"projection": time.perf_counter() - t_start}
    parts = _cluster_surfaces(proj, _SURFACES, algorithm, rparams, seconds)
    refine = [s for s in _SURFACES if s[1] in pp["refine_regions"]]
    if refine:
        t0 = time.perf_counter()
        idx, cl = np.concatenate(parts[0]), np.concatenate(parts[1])
        proj, _ = refine_vertex_z(hits, proj, idx, cl, pp, event=event)
        dt = time.perf_counter() - t0
        for name in {s[1] for s in refine}:
            seconds[name] += dt / len({s[1] for s in refine})
        if pp["recluster"]:
            keep = [i for i, s in enumerate(_SURFACES) if s not in refine]
            redo = _cluster_surfaces(proj, refine, algorithm, rparams, seconds)
            parts = tuple([part[i] for i in keep] + new for part, new in zip(parts, redo))
    idx_parts, cl_parts, reg_parts = parts
    # renumber clusters consecutively in surface order
    hit_index, cluster_id, region = [], [], []
    offset = 0
    for idx, cl, reg in zip(idx_parts, cl_parts, reg_parts):
        if len(cl):
            base = cl.min()
            hit_index.append(idx)
            cluster_id.append(cl - base + offset)
            region.append(reg)
            offset += len(reg)
    n = len(proj.region)
    seconds["total"] = time.perf_counter() - t_start
    return LocalityResult(
        hit_index=np.concatenate(hit_index) if hit_index else np.zeros(0, np.int64),
        cluster_id=np.concatenate(cluster_id) if cluster_id else np.zeros(0, np.int64),
        n_hits=n, n_clusters=offset,
        hit_region=(proj.region != BARREL).astype(np.int8),
        cluster_region=np.concatenate(region) if region else np.zeros(0, np.int8),
        projection=proj, seconds=seconds)


def event_blocks(event_id, hits, algorithm: str, params: dict | None = None, projection: dict | None = None,
                 blocks: dict | None = None, cache_dir=None, *, on_corrupt: str = "rebuild"):
    """Block tables of one event for cluster-restricted attention, cached under ``cache_dir`` if given.

    The cache key covers the event's hit ids and coordinates and every parameter (algorithm, per-region
    clustering, projection, blocks), so a change to any of them builds new tables; epochs after the first
    load them from disk. Returns (ClusterBlocks, loaded_from_cache).
    """
    from .blocks import build_blocks, cache_key, cached_blocks

    def build():
        r = cluster_event(hits, algorithm, params, projection, event=event_id)
        return build_blocks(r.hit_index, r.cluster_id, r.n_hits, blocks)

    if cache_dir is None:
        return build(), False
    key = cache_key(event_id, hits, algorithm, {"clustering": region_params(algorithm, params),
                                                 "projection": projection_params(projection), "blocks": blocks or {}})
    return cached_blocks(cache_dir, event_id, key, build, on_corrupt=on_corrupt)
