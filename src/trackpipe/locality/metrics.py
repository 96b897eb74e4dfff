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
* ``full_containment``: of the reconstructible-ratio denominator, the fraction with *all* their hits in one
  attention neighbourhood (seed 004 §3.2 reports > 98 %). The reconstructible ratio counts a 2/2 split,
  which no track can ever double-majority match; this one does not.
* ``oracle_dm_efficiency``: the DM efficiency (same denominator and rule as ``cluster_dm_efficiency``) of
  the tracks that the project's own track formation (``tracking.embedding.tracks_from_embedding`` with
  ``TRACK_FORMATION`` or ``params["tracking"]``) builds from a *perfect* embedding: the hits of one
  particle share one unit vector, every particle and every noise hit get their own (random, 32-d, so
  different particles have cosines far below any threshold). It is the ceiling the neighbourhoods put on
  a learned tracker. Computed only when ``oracle=True`` (it costs a track formation).
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError, DataError
from ..metrics.tracks import double_majority
from .pipeline import LocalityResult

METRIC_DEFAULTS = {"pt_min": 0.9, "min_hits": 3, "contained": 0.5, "max_eta": 4.0, "min_layers": 3,
                   "tracking": {}}
ORACLE_DIM = 32  # the contrastive embedding's size; random unit vectors this long are nearly orthogonal


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


def dm_matched(code: np.ndarray, hit_index: np.ndarray, group: np.ndarray, n_groups: int, nh: np.ndarray) -> np.ndarray:
    """Per particle code: is it double-majority matched by one of the groups (clusters or tracks)?

    ``hit_index``/``group`` are (hit, group) memberships; a group matches its majority particle (noise hits
    count as "particle -1" and can win the majority) when it has >= 3 hits and that particle holds more
    than half of the group and more than half of its own ``nh`` hits (``metrics.tracks.double_majority``).
    """
    m_code = code[hit_index]
    ok = m_code >= 0
    n_p = len(nh)
    G = max(n_groups, 1)
    pc, counts = np.unique(m_code[ok] * G + group[ok], return_counts=True)
    pc_particle, pc_group = pc // G, pc % G
    sizes = np.bincount(group, minlength=n_groups)
    maj_hits = np.bincount(group[~ok], minlength=n_groups).astype(np.int64)
    maj_code = np.full(n_groups, -1, np.int64)
    ordr = np.lexsort((counts, pc_group))  # per group, the largest count last
    last = np.r_[pc_group[ordr][1:] != pc_group[ordr][:-1], True] if len(ordr) else np.zeros(0, bool)
    g_last, cnt_last, par_last = pc_group[ordr][last], counts[ordr][last], pc_particle[ordr][last]
    better = cnt_last > maj_hits[g_last]
    maj_code[g_last[better]] = par_last[better]
    maj_hits[g_last[better]] = cnt_last[better]
    has = maj_code >= 0
    dm = np.zeros(n_groups, bool)
    dm[has] = (sizes[has] >= 3) & double_majority(maj_hits[has], sizes[has], nh[maj_code[has]])
    matched = np.zeros(n_p, bool)
    matched[maj_code[dm]] = True
    return matched


def oracle_embedding(code: np.ndarray, dim: int = ORACLE_DIM, seed: int = 0) -> np.ndarray:
    """Unit vectors (hits, dim): one per particle code shared by its hits, one per noise hit (code < 0)."""
    rng = np.random.default_rng(seed)
    n_codes = int(code.max(initial=-1)) + 1
    vec = rng.standard_normal((n_codes + len(code), dim)).astype(np.float32)
    vec /= np.linalg.norm(vec, axis=1, keepdims=True)
    return vec[np.where(code >= 0, code, n_codes + np.arange(len(code)))]


def oracle_tracks(code: np.ndarray, result: LocalityResult, tracking: dict | None = None, layer=None) -> np.ndarray:
    """Track id per hit that the project's track formation builds from the perfect embedding; ``layer``:
    the hits' `tracking.embedding.layer_codes` (needed with ``max_hits_per_layer`` > 0)."""
    from ..tracking.embedding import TRACK_FORMATION, tracks_from_embedding
    from .blocks import build_blocks

    params = {**TRACK_FORMATION, **(tracking or {})}
    blocks = build_blocks(result.hit_index, result.cluster_id, result.n_hits)
    return tracks_from_embedding(oracle_embedding(code), blocks, **params, layer=layer)


def locality_metrics(hits, particles, result: LocalityResult, params: dict | None = None, *, event=None,
                     oracle: bool = False) -> dict:
    """{region: {metric: value}} for ``barrel``, ``endcap`` and ``all``; ``oracle=True`` adds
    ``oracle_dm_efficiency``."""
    p = {**METRIC_DEFAULTS, **(params or {})}
    unknown = set(p) - set(METRIC_DEFAULTS)
    if unknown:
        raise ConfigError(f"unknown locality metrics keys {sorted(unknown)}; allowed: {sorted(METRIC_DEFAULTS)}")
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
    best = np.zeros(n_p)
    np.maximum.at(best, pc // C, counts)
    contained = best >= p["contained"] * np.maximum(nh, 1)

    full = best >= np.maximum(nh, 1)
    sizes = np.bincount(result.cluster_id, minlength=result.n_clusters)
    matched = dm_matched(code, result.hit_index, result.cluster_id, result.n_clusters, nh)
    oracle_matched = None
    if oracle:
        from ..tracking.embedding import hit_layers

        tracks = oracle_tracks(code, result, p["tracking"], hit_layers(hits))
        oracle_matched = dm_matched(code, np.arange(len(code)), tracks, int(tracks.max(initial=-1)) + 1, nh)

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
            "full_containment": float(full[den].mean()) if den.any() else float("nan"),
        }
        if oracle_matched is not None:
            out[name]["oracle_dm_efficiency"] = float(oracle_matched[dm_den].mean()) if dm_den.any() else float("nan")
    return out
