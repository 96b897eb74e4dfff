"""Per-event quality of a locality clustering (slides seed 001 comparison table; seed 002 §2.2.1).

For each region (``barrel``, ``endcap``) and the whole event (``all``):

* ``reconstructible_ratio``: of the particles with pT > ``pt_min`` and >= ``min_hits`` hits in the hit set,
  the fraction having >= ``contained`` (50 %) of their hits in one cluster [P2 §2.2.1]. A particle
  belongs to the region holding most of its hits (ties: barrel).
* ``attention_fraction``: sum over the region's clusters of size² / N_region² (the slides' "attn. matrix
  reduction"); a hit duplicated into several clusters counts in each.
* ``n_clusters``: clusters with at least 2 hits; ``n_single`` counts the hits left in one-hit clusters.
* ``cluster_dm_efficiency``: each cluster taken as a track candidate, gnn_tracking double-majority rule
  (cluster >= 3 hits, majority particle holds > 50 % of the cluster and > 50 % of its own hits); the
  denominator is the particles with pT > ``pt_min``, |eta| < 4 and hits on >= 3 distinct layers; a particle
  matched by several (overlapping) clusters counts once.
* ``n_tracks``: the reconstructible-ratio denominator (the slides' "# tracks").
"""

from __future__ import annotations

import numpy as np

from ..errors import DataError
from .pipeline import LocalityResult

METRIC_DEFAULTS = {"pt_min": 0.9, "min_hits": 3, "contained": 0.5, "max_eta": 4.0, "min_layers": 3}


def _particle_kinematics(hits, particles, event=None):
    """Per-hit (particle code 0..P-1 or -1 for noise / unknown), and per code pT, |eta|."""
    if "particle_id" not in hits:
        raise DataError("hits need particle_id for locality metrics", event=event, column="particle_id")
    pid = np.asarray(hits["particle_id"], dtype=np.int64)
    for c in ("particle_id", "px", "py", "pz"):
        if c not in particles:
            raise DataError("particles table lacks a column", event=event, column=c)
    ppid = np.asarray(particles["particle_id"], dtype=np.int64)
    order = np.argsort(ppid)
    ppid = ppid[order]
    pos = np.clip(np.searchsorted(ppid, pid), 0, max(len(ppid) - 1, 0))
    known = (pid > 0) & (len(ppid) > 0) & (ppid[pos] == pid) if len(ppid) else np.zeros(len(pid), bool)
    code = np.where(known, pos, -1)
    px, py, pz = (np.asarray(particles[c], dtype=np.float64)[order] for c in ("px", "py", "pz"))
    pt = np.hypot(px, py)
    p = np.sqrt(pt**2 + pz**2)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.abs(np.arctanh(np.where(p > 0, pz / p, 0.0)))
    return code, pt, np.nan_to_num(eta, nan=np.inf, posinf=np.inf)


def locality_metrics(hits, particles, result: LocalityResult, params: dict | None = None, *, event=None) -> dict:
    """{region: {metric: value}} for ``barrel``, ``endcap`` and ``all``."""
    p = {**METRIC_DEFAULTS, **(params or {})}
    code, pt, eta = _particle_kinematics(hits, particles, event)
    n_p = len(pt)
    hit_region = result.hit_region.astype(np.int64)
    real = code >= 0
    nh = np.bincount(code[real], minlength=n_p)
    in_endcap = np.bincount(code[real], weights=hit_region[real], minlength=n_p)
    p_region = (in_endcap > nh / 2).astype(np.int64)  # majority of hits; ties to the barrel
    if "layer_id" in hits:
        vol = np.asarray(hits["volume_id"], np.int64) if "volume_id" in hits else np.zeros(len(code), np.int64)
        layer_key = vol * 10_000 + np.asarray(hits["layer_id"], np.int64)
        pairs = np.unique(np.stack([code[real], layer_key[real]]), axis=1)
        n_layers = np.bincount(pairs[0], minlength=n_p)
    else:
        n_layers = nh
    recon_sel = (pt > p["pt_min"]) & (nh >= p["min_hits"])
    dm_sel = (pt > p["pt_min"]) & (eta < p["max_eta"]) & (n_layers >= p["min_layers"])

    # hits of each particle per cluster, from the (hit, cluster) memberships
    m_code = code[result.hit_index]
    ok = m_code >= 0
    C = max(result.n_clusters, 1)
    pc, counts = np.unique(m_code[ok] * C + result.cluster_id[ok], return_counts=True)
    pc_particle, pc_cluster = pc // C, pc % C
    best = np.zeros(n_p)
    np.maximum.at(best, pc_particle, counts)
    contained = best >= p["contained"] * np.maximum(nh, 1)

    sizes = np.bincount(result.cluster_id, minlength=result.n_clusters)
    # majority particle of each cluster (noise hits count as "particle -1" and can win the majority)
    n_noise = np.bincount(result.cluster_id[~ok], minlength=result.n_clusters)
    maj_hits = n_noise.astype(np.int64)
    maj_code = np.full(result.n_clusters, -1, np.int64)
    ordr = np.lexsort((counts, pc_cluster))  # per cluster, the largest count last
    last = np.r_[pc_cluster[ordr][1:] != pc_cluster[ordr][:-1], True] if len(ordr) else np.zeros(0, bool)
    cl_last, cnt_last, par_last = pc_cluster[ordr][last], counts[ordr][last], pc_particle[ordr][last]
    better = cnt_last > maj_hits[cl_last]
    maj_code[cl_last[better]] = par_last[better]
    maj_hits[cl_last[better]] = cnt_last[better]
    has = maj_code >= 0
    dm = has & (sizes >= 3) & (maj_hits > 0.5 * sizes)
    dm[has] &= maj_hits[has] > 0.5 * nh[maj_code[has]]
    matched = np.zeros(n_p, bool)
    matched[maj_code[dm]] = True

    out = {}
    for name, rsel in (("barrel", 0), ("endcap", 1), ("all", None)):
        h_in = np.ones(len(code), bool) if rsel is None else hit_region == rsel
        c_in = np.ones(result.n_clusters, bool) if rsel is None else result.cluster_region == rsel
        p_in = np.ones(n_p, bool) if rsel is None else p_region == rsel
        n_hits = int(h_in.sum())
        den = recon_sel & p_in & (nh > 0)
        dm_den = dm_sel & p_in & (nh > 0)
        out[name] = {
            "n_hits": n_hits,
            "n_tracks": int(den.sum()),
            "reconstructible_ratio": float(contained[den].mean()) if den.any() else float("nan"),
            "attention_fraction": float((sizes[c_in].astype(np.float64) ** 2).sum() / n_hits**2) if n_hits else float("nan"),
            "n_clusters": int((sizes[c_in] >= 2).sum()),
            "n_single": int((sizes[c_in] == 1).sum()),
            "cluster_dm_efficiency": float(matched[dm_den].mean()) if dm_den.any() else float("nan"),
        }
    return out
