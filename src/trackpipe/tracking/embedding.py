"""Track formation from per-hit contrastive embeddings (seed 004 §3.4, seed 002 §2.2.1).

Similarities are cosines of the unit-length embeddings, computed only inside locality clusters (the
embeddings were trained to separate particles within a cluster; across clusters they are not comparable)
on the cluster-blocked layout: per bucket one (clusters, L, L) tensor, on the embeddings' device (GPU
when the model runs there).

Edges: ``method: knn`` links each hit to its ``k`` most similar cluster mates (k ~ the number of pixel
layers a track crosses) whose similarity is at least ``threshold``; ``method: threshold`` links every
cluster pair above ``threshold``. With ``mutual: true`` an edge is kept only if both hits chose each
other. With ``max_hits_per_layer`` 1 or 2 (default 2) tracks are built greedily from the most similar
edge down, and an edge joins two tracks only if no detector layer then holds more than that many of the
track's hits (`layer_constrained_components`); with 0 tracks are the connected components of the kept
edges. Either way the submission is disjoint by construction: every hit in exactly one track (a hit
without an edge is a track of its own). Threshold selection tries limits 1 and 2 with every threshold.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from ..errors import ConfigError, DataError

TRACK_FORMATION = {"method": "knn", "k": 20, "threshold": 0.9, "mutual": False, "max_hits_per_layer": 2,
                   "helix_tolerance": None}
# Thresholds tried after training and the validation events they are scored on (pooled: `select_threshold`).
# helix_quantile: selection also tries the helix test (`tracking.helix`) with tolerances at this quantile of
# the true particles' residuals on the selection events (null: never)
SELECTION = {"thresholds": [0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995], "layer_limits": [1, 2],
             "helix_quantile": 0.99, "selection_events": 5}
# Saved models from before max_hits_per_layer (helix_tolerance) existed built connected components (no helix test).
_SAVED_DEFAULTS = {"max_hits_per_layer": 0, "helix_tolerance": None}


def _check(method: str, k: int, max_hits_per_layer: int = 0) -> None:
    if int(max_hits_per_layer) not in (0, 1, 2):
        raise ConfigError(f"tracking.max_hits_per_layer must be 0 (connected components), 1 or 2, not {max_hits_per_layer}")
    if method not in ("knn", "threshold"):
        raise ConfigError(f"tracking.method must be knn or threshold, not {method!r}")
    if method == "knn" and int(k) < 1:
        raise ConfigError(f"tracking.k must be >= 1, not {k}")


#: Similarity entries held at once (128 MB of float32): clusters are scored in groups, and a cluster too
#: big for one group (a clustering that made one giant cluster) in chunks of query rows.
MAX_SCORES = 1 << 25


def candidate_edges(embedding, blocks, *, method: str = "knn", k: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Directed candidate edges (i, j, cosine) inside clusters: each hit's k best mates (knn) or all
    cluster pairs (threshold). Thresholds are applied by the caller, so one set serves many thresholds.
    Memory stays below `MAX_SCORES` similarities whatever the cluster sizes."""
    _check(method, k)
    emb = torch.as_tensor(embedding).float()
    token_hit = torch.as_tensor(blocks.token_hit, device=emb.device)
    src, dst, sim = [], [], []
    with torch.no_grad():
        for L, table in blocks.buckets():
            if L < 2:
                continue
            t = torch.as_tensor(table, device=emb.device)
            valid = t >= 0
            hit = torch.where(valid, token_hit[t.clamp(min=0)], 0)
            e = emb[hit]
            n_clusters = max(1, MAX_SCORES // (L * L))
            n_rows = L if n_clusters > 1 else max(1, MAX_SCORES // L)
            columns = torch.arange(L, device=emb.device)
            for c0 in range(0, e.shape[0], n_clusters):
                for r0 in range(0, L, n_rows):
                    cs, rs = slice(c0, c0 + n_clusters), slice(r0, min(r0 + n_rows, L))
                    s = torch.bmm(e[cs, rs], e[cs].transpose(1, 2))                      # (clusters, rows, L)
                    # real query and key slots, no self pairs (padding slots point at hit 0 and must not link it)
                    not_self = columns[rs, None] != columns[None, :]
                    keys = valid[cs, rs, None] & valid[cs, None, :] & not_self
                    s = s.masked_fill(~keys, -2.0)  # below any cosine: never chosen, never above a threshold
                    h = hit[cs]
                    if method == "knn":
                        vals, idx = s.topk(min(int(k), L - 1), dim=-1)
                        q = h[:, rs, None].expand_as(idx)
                        m = vals > -2.0
                        src.append(q[m]), sim.append(vals[m])
                        dst.append(torch.gather(h, 1, idx.flatten(1)).view_as(idx)[m])
                    else:
                        c, a, b = torch.nonzero(s > -2.0, as_tuple=True)
                        src.append(h[c, a + r0]), dst.append(h[c, b]), sim.append(s[c, a, b])
    if not src:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    return (torch.cat(src).cpu().numpy().astype(np.int64), torch.cat(dst).cpu().numpy().astype(np.int64),
            torch.cat(sim).cpu().numpy().astype(np.float32))


def layer_codes(volume_id, layer_id) -> np.ndarray:
    """One small integer per detector layer (volume, layer) of each hit: 0 .. n_layers - 1."""
    key = np.asarray(volume_id, np.int64) * 100_000 + np.asarray(layer_id, np.int64)
    return np.unique(key, return_inverse=True)[1].reshape(-1).astype(np.int64)


def tracks_from_edges(n_hits: int, src, dst, sim, *, threshold: float, mutual: bool, max_hits_per_layer: int = 0,
                      layer: np.ndarray | None = None, helix=None, supported: np.ndarray | None = None) -> np.ndarray:
    """Track id per hit from the edges with cosine >= threshold (mutual ones only).

    ``max_hits_per_layer`` 0: the connected components of the edges. 1 or 2 (with ``layer``, per hit
    `layer_codes`): the edges are taken from the most similar down and join two tracks only if no layer
    then holds more than that many hits (`layer_constrained_components`), so one wrong edge cannot chain
    tracks into a giant component.

    helix: a `tracking.helix.HelixTest` of the event (needs a layer limit): only edges with a third
    candidate hit that makes a helix with them (`HelixTest.supported`, over all the given edges before the
    threshold; pass ``supported`` to reuse it across thresholds) are used, and every join must leave a helix.
    """
    layer = _layers_for(max_hits_per_layer, layer)
    if helix is not None:
        if layer is None:
            raise ConfigError("tracking.helix_tolerance needs layer-constrained track formation "
                              "(tracking.max_hits_per_layer 1 or 2)")
        if supported is None:
            supported = helix.supported(src, dst, layer)
    keep = sim >= threshold
    if helix is not None:
        keep &= supported
    a, b, w = src[keep], dst[keep], sim[keep]
    if mutual and len(a):
        code, first = np.unique(a * n_hits + b, return_index=True)
        a, b, w = code // n_hits, code % n_hits, w[first]
        back = np.isin(b * n_hits + a, code, assume_unique=False)
        a, b, w = a[back], b[back], w[back]
    if layer is not None:
        return layer_constrained_components(n_hits, a, b, w, layer, int(max_hits_per_layer),
                                            helix=None if helix is None else helix.greedy_args())
    graph = sparse.coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(n_hits, n_hits))
    _, labels = connected_components(graph, directed=False)
    return labels.astype(np.int64)


def layer_constrained_components(n_hits: int, src, dst, sim, layer, max_per_layer: int = 1,
                                 helix: tuple | None = None) -> np.ndarray:
    """Greedy track building: edges in order of decreasing similarity join two tracks only if no detector
    layer then holds more than ``max_per_layer`` (1 or 2) hits of the joined track. Track id per hit.

    Why: a charged particle crosses each layer once, and a track that already has a hit on a layer cannot
    take another one there; connected components instead merge everything an edge chain reaches, and in a
    crowded barrel window one wrong edge per hit joins hundreds of tracks. ``max_per_layer: 2`` allows the
    second hit that overlapping modules give (the real TrackML event in shared/data: 52 of its 69 pixel
    particles above 0.9 GeV have one, 4 mm apart in the median): with 1, a particle with two hits on a
    layer can end up split between two half-tracks that no edge may join. Simulated events have none,
    and there 1 is much stronger (threshold selection tries both).

    Computed in rounds: each track takes its most similar edge to a compatible track, and pairs of tracks
    that chose the same edge merge. Such an edge is the one sequential greedy (Kruskal's order with the
    layer test) would take, since every more similar edge at either end is already inside a track or
    incompatible, and merging only makes tracks less compatible; so the rounds give the greedy result,
    vectorised (ties go to the edge listed first after a stable sort by similarity).

    helix: optional (per-hit sums, phi, (transverse, z) tolerance in mm²) of `tracking.helix`: a join must
    also leave the joined track a helix from the beam line (`helix.fit_rss` within the tolerance). The
    residuals only grow as tracks grow, so this test, like the layer test, never turns true again and the
    rounds still give the sequential greedy result.
    """
    if max_per_layer not in (1, 2):
        raise ConfigError(f"max hits per layer must be 1 or 2, not {max_per_layer}")
    layer = np.asarray(layer, np.int64)
    if len(layer) != n_hits:
        raise DataError(f"layer codes for {len(layer)} hits, but the event has {n_hits}", column="layer_id")
    n_layers = int(layer.max(initial=-1)) + 1
    if n_layers > 64:
        raise DataError(f"{n_layers} distinct detector layers; layer-constrained track formation handles at most 64",
                        column="layer_id")
    # per track one bit per layer: `once` = the layers holding at least one hit, `twice` = at least two
    once = np.left_shift(np.uint64(1), layer.astype(np.uint64))
    twice = np.zeros(n_hits, np.uint64)
    track = np.arange(n_hits)
    if helix is not None:
        from .helix import branch_shift, fit_rss, rephased

        sums, phi, (tol_t, tol_z) = np.array(helix[0], np.float64, copy=True), np.asarray(helix[1]), helix[2]
        if sums.shape[0] != n_hits or len(phi) != n_hits:
            raise DataError(f"helix sums for {sums.shape[0]} hits, but the event has {n_hits}", column="x, y, z")
    order = np.argsort(-np.asarray(sim, np.float64), kind="stable")
    a, b = np.asarray(src, np.int64)[order], np.asarray(dst, np.int64)[order]
    while len(a):
        ta, tb = track[a], track[b]
        if max_per_layer == 1:
            clash = once[ta] & once[tb]
        else:
            clash = (twice[ta] & once[tb]) | (once[ta] & twice[tb])
        ok = (ta != tb) & (clash == 0)  # incompatible pairs stay incompatible: drop them for good
        a, b, ta, tb = a[ok], b[ok], ta[ok], tb[ok]
        if helix is not None and len(a):  # a track's sums hold its phi on the branch of its root hit
            rss_t, rss_z = fit_rss(sums[ta] + rephased(sums[tb], branch_shift(phi[tb], phi[ta])))
            ok = (rss_t <= tol_t) & (rss_z <= tol_z)
            a, b, ta, tb = a[ok], b[ok], ta[ok], tb[ok]
        if not len(a):
            break
        rank = np.arange(len(a))
        best = np.full(n_hits, len(a))
        np.minimum.at(best, ta, rank)
        np.minimum.at(best, tb, rank)
        chosen = (best[ta] == rank) & (best[tb] == rank)
        keep_track, merged = ta[chosen], tb[chosen]
        if helix is not None:
            sums[keep_track] += rephased(sums[merged], branch_shift(phi[merged], phi[keep_track]))
        twice[keep_track] |= twice[merged] | (once[keep_track] & once[merged])
        once[keep_track] |= once[merged]
        relabel = np.arange(n_hits)
        relabel[merged] = keep_track
        track = relabel[track]
    return np.unique(track, return_inverse=True)[1].reshape(-1).astype(np.int64)


def hit_layers(hits) -> np.ndarray | None:
    """`layer_codes` of a hits table (or dict of per-hit arrays) with volume_id and layer_id, else None."""
    if "volume_id" in hits and "layer_id" in hits:
        return layer_codes(hits["volume_id"], hits["layer_id"])
    return None


def _layers_for(max_hits_per_layer: int, layer, event=None):
    if not max_hits_per_layer:
        return None
    if layer is None:
        raise DataError("track formation with tracking.max_hits_per_layer > 0 needs each hit's volume_id and layer_id "
                        "(set tracking.max_hits_per_layer: 0 for hits without them)", event=event,
                        column="volume_id, layer_id")
    return layer


def tracks_from_embedding(embedding, blocks, *, method: str = "knn", k: int = 10, threshold: float = 0.8,
                          mutual: bool = False, max_hits_per_layer: int = 0, helix_tolerance=None, layer=None,
                          xyz=None) -> np.ndarray:
    """Disjoint track ids (one per hit) from unit-length embeddings (hits, dim) and the event's clusters;
    ``layer``: per-hit `layer_codes`, needed with ``max_hits_per_layer`` > 0; ``xyz``: the hits' x, y, z
    (mm), needed with a ``helix_tolerance`` (`tracking.helix`)."""
    _check(method, k, max_hits_per_layer)
    helix = _helix_for(helix_tolerance, xyz, blocks.n_hits)
    src, dst, sim = candidate_edges(embedding, blocks, method=method, k=k)
    return tracks_from_edges(blocks.n_hits, src, dst, sim, threshold=threshold, mutual=mutual,
                             max_hits_per_layer=max_hits_per_layer, layer=layer, helix=helix)


def _helix_for(tolerance, xyz, n_hits: int, event=None):
    from .helix import HelixTest, check_tolerance

    if check_tolerance(tolerance) is None:
        return None
    if xyz is None:
        raise DataError("track formation with tracking.helix_tolerance needs the hits' x, y, z", event=event,
                        column="x, y, z")
    if len(xyz) != n_hits:
        raise DataError(f"coordinates for {len(xyz)} hits, but the event has {n_hits}", event=event, column="x, y, z")
    return HelixTest(xyz, tolerance)


def tracking_params(section: dict) -> dict:
    """The track-formation keys of a model's ``tracking`` section, checked."""
    from .helix import check_tolerance

    p = {key: section.get(key, default) for key, default in TRACK_FORMATION.items()}
    _check(p["method"], p["k"], p["max_hits_per_layer"])
    tolerance = check_tolerance(p["helix_tolerance"])
    p["helix_tolerance"] = None if tolerance is None else list(tolerance)
    if tolerance is not None and not p["max_hits_per_layer"]:
        raise ConfigError("tracking.helix_tolerance needs tracking.max_hits_per_layer 1 or 2")
    return p


def saved_tracking_params(clustering: dict) -> dict:
    """The track-formation keys of a trained model's ``preprocessing.json`` clustering section."""
    return {key: clustering[key] if key in clustering else _SAVED_DEFAULTS[key] for key in TRACK_FORMATION}


#: What `select_threshold` maximises: the headline, the double-majority efficiency of the particles with
#: pT >= 0.9 GeV, |eta| < 4 and hits on >= 3 layers (`metrics.efficiency`, its default cuts).
OBJECTIVE = "dm_efficiency_pt0.9"
#: Per-hit fields of each selection event: truth for the TrackML score (particle_id, weight) and for the DM
#: efficiency (the particle's pt and pz, the hit's volume_id and layer_id; `train.locality.load_arrays`).
SELECTION_FIELDS = ("particle_id", "weight", "pt", "pz", "volume_id", "layer_id")
#: ... and with the helix test (`tracking.helix`) the hits' physical x, y, z (hits, 3), mm.
HELIX_FIELD = "hit_xyz"


def _selection_truth(events):
    """(truth for the TrackML score, hits and particles for `metrics.efficiency`) of the selection events.

    The particles table holds what the DM selection reads, pT and eta: the momentum is rebuilt as
    (pt, 0, pz), which has the particle's pT and eta (its azimuth and vertex are not used)."""
    import pandas as pd

    truth, hits, particles = [], [], []
    for event_id, _, blocks, fields in events:
        missing = [c for c in SELECTION_FIELDS if c not in fields]
        if missing:
            raise DataError(f"validation event lacks the per-hit field(s) {missing} that threshold selection scores "
                            "with (EventArrays from train.locality.load_arrays carry them)", event=int(event_id),
                            column=", ".join(missing))
        n = blocks.n_hits
        if any(len(fields[c]) != n for c in SELECTION_FIELDS):
            raise DataError(f"validation event's per-hit fields do not have its {n} hits", event=int(event_id))
        pid = np.asarray(fields["particle_id"], np.int64)
        frame = pd.DataFrame({"event_id": np.int64(event_id), "hit_id": np.arange(n), "particle_id": pid})
        truth.append(frame.assign(weight=np.asarray(fields["weight"], np.float64)))
        hits.append(frame.assign(volume_id=np.asarray(fields["volume_id"], np.int64),
                                 layer_id=np.asarray(fields["layer_id"], np.int64)))
        first = np.unique(pid, return_index=True)[1]
        first = first[pid[first] != 0]
        pt = np.asarray(fields["pt"], np.float64)[first]
        particles.append(pd.DataFrame({"event_id": np.int64(event_id), "particle_id": pid[first], "px": pt,
                                       "py": 0.0, "pz": np.asarray(fields["pz"], np.float64)[first], "vz": 0.0}))
    return (pd.concat(truth, ignore_index=True), pd.concat(hits, ignore_index=True),
            pd.concat(particles, ignore_index=True))


def select_threshold(events, params: dict, thresholds, layer_limits=None,
                     helix_quantile: float | None = None) -> tuple[float, list[dict]]:
    """The similarity threshold with the best DM efficiency at pT > 0.9 GeV (`OBJECTIVE`) on validation events.

    events: list of (event_id, embedding (hits, dim), blocks, fields) with the per-hit `SELECTION_FIELDS`;
    candidate edges are computed once per event and reused for every threshold. The efficiency pools the
    particles of all events (matched over selected, summed over events: not a mean of per-event ratios).
    Ties go to the higher TrackML score (mean over the events), then to the higher threshold; without any
    selected particle (no momenta, e.g. REDVID) the TrackML score decides. ``layer_limits`` (e.g. [1, 2]):
    the ``max_hits_per_layer`` values tried with every threshold (default: the params' own); real TrackML
    pixels give a second hit on a layer for most tracks (overlapping modules, double-sided endcap
    modules), simulated events none, so the data decide. ``helix_quantile`` (e.g. 0.99): every
    combination is also tried with the helix test (`tracking.helix`), its tolerances the quantile of the
    true particles' residuals on these events (`helix.calibrate_tolerance`); None: the params' own
    ``helix_tolerance`` only. One grid row per (helix tolerance, limit, threshold): threshold,
    max_hits_per_layer, helix_tolerance, dm_efficiency (None without selected particles), trackml_score,
    fake_rate, duplicate_rate, the pooled counts n_selected_particles, n_dm_matched, and chosen.
    """
    import pandas as pd

    from ..metrics.efficiency import tracking_metrics
    from ..metrics.score import trackml_score
    from .helix import calibrate_tolerance, check_tolerance

    if not events or not len(thresholds):
        raise ConfigError("threshold selection needs validation events and at least one threshold")
    truth, hits, particles = _selection_truth(events)
    limits = [int(params.get("max_hits_per_layer", 0))] if layer_limits is None else [int(x) for x in layer_limits]
    for limit in limits:
        _check(params["method"], params["k"], limit)
    own = check_tolerance(params.get("helix_tolerance"))
    tolerances = [own]
    if own is not None or helix_quantile is not None:
        for event_id, _, blocks, fields in events:
            if HELIX_FIELD not in fields or len(fields[HELIX_FIELD]) != blocks.n_hits:
                raise DataError(f"validation event lacks the per-hit field {HELIX_FIELD} (x, y, z) that the helix test "
                                "of track formation fits (tracking.helix_quantile: null turns the test off)",
                                event=int(event_id), column=HELIX_FIELD)
    layers = [hit_layers(fields) for _, _, _, fields in events]
    if helix_quantile is not None:
        calibrated = calibrate_tolerance([(fields[HELIX_FIELD], fields["particle_id"], fields["pt"], layer)
                                          for (_, _, _, fields), layer in zip(events, layers)], float(helix_quantile))
        tolerances = [None] + ([calibrated] if calibrated is not None else [])
    prepared = []
    for (event_id, emb, blocks, fields), codes in zip(events, layers):
        layer = _layers_for(max(limits), codes, event_id)
        s, d, v = candidate_edges(emb, blocks, method=params["method"], k=params["k"])
        tests = {}
        for tol in tolerances:
            if tol is not None and layer is not None:
                test = _helix_for(tol, fields[HELIX_FIELD], blocks.n_hits, event_id)
                tests[tol] = (test, test.supported(s, d, layer))
        prepared.append((event_id, blocks.n_hits, layer, s, d, v, tests))
    rows = []
    for tol in tolerances:
        for limit in limits:
            if tol is not None and not limit:
                continue
            for thr in sorted(float(t) for t in thresholds):
                sub = pd.concat([pd.DataFrame({"event_id": np.int64(e), "hit_id": np.arange(n), "track_id": tracks_from_edges(
                    n, s, d, v, threshold=thr, mutual=params["mutual"], max_hits_per_layer=limit, layer=layer,
                    helix=tests[tol][0] if tol is not None else None,
                    supported=tests[tol][1] if tol is not None else None)})
                    for e, n, layer, s, d, v, tests in prepared], ignore_index=True)
                m = tracking_metrics(hits, particles, sub)  # pooled over the events
                rows.append({"threshold": thr, "max_hits_per_layer": limit,
                             "helix_tolerance": None if tol is None else list(tol),
                             "dm_efficiency": _finite(m["dm_efficiency"]),
                             "trackml_score": float(trackml_score(truth, sub)), "fake_rate": _finite(m["fake_rate"]),
                             "duplicate_rate": _finite(m["duplicate_rate"]),
                             "n_selected_particles": m["n_selected_particles"], "n_dm_matched": m["n_dm_matched"]})
    best = max(rows, key=lambda r: (-np.inf if r["dm_efficiency"] is None else r["dm_efficiency"],
                                    r["trackml_score"], r["threshold"], -r["max_hits_per_layer"]))
    for r in rows:
        r["chosen"] = r is best
    return best["threshold"], rows


def _finite(x: float) -> float | None:
    """JSON-friendly rate: None where it is undefined (0/0)."""
    return None if np.isnan(x) else float(x)
