"""Track formation from per-hit contrastive embeddings (seed 004 §3.4, seed 002 §2.2.1).

Similarities are cosines of the unit-length embeddings, computed only inside locality clusters (the
embeddings were trained to separate particles within a cluster; across clusters they are not comparable)
on the cluster-blocked layout: per bucket one (clusters, L, L) tensor, on the embeddings' device (GPU
when the model runs there).

Edges: ``method: knn`` links each hit to its ``k`` most similar cluster mates (k ~ the number of pixel
layers a track crosses) whose similarity is at least ``threshold``; ``method: threshold`` links every
cluster pair above ``threshold``. With ``mutual: true`` an edge is kept only if both hits chose each
other, which stops one hit from chaining two tracks together. Tracks are the connected components of the
kept edges, so the submission is disjoint by construction: every hit in exactly one track (a hit without
an edge is a track of its own).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from ..errors import ConfigError, DataError

TRACK_FORMATION = {"method": "knn", "k": 6, "threshold": 0.9, "mutual": True}
# Thresholds tried after training and the validation events they are scored on (pooled: `select_threshold`).
SELECTION = {"thresholds": [0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995], "selection_events": 5}


def _check(method: str, k: int) -> None:
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


def tracks_from_edges(n_hits: int, src, dst, sim, *, threshold: float, mutual: bool) -> np.ndarray:
    """Track id per hit: connected components of the edges with cosine >= threshold (mutual ones only)."""
    keep = sim >= threshold
    a, b = src[keep], dst[keep]
    if mutual and len(a):
        code = np.unique(a * n_hits + b)
        a, b = code // n_hits, code % n_hits
        back = np.isin(b * n_hits + a, code, assume_unique=False)
        a, b = a[back], b[back]
    graph = sparse.coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(n_hits, n_hits))
    _, labels = connected_components(graph, directed=False)
    return labels.astype(np.int64)


def tracks_from_embedding(embedding, blocks, *, method: str = "knn", k: int = 10, threshold: float = 0.8,
                          mutual: bool = True) -> np.ndarray:
    """Disjoint track ids (one per hit) from unit-length embeddings (hits, dim) and the event's clusters."""
    src, dst, sim = candidate_edges(embedding, blocks, method=method, k=k)
    return tracks_from_edges(blocks.n_hits, src, dst, sim, threshold=threshold, mutual=mutual)


def tracking_params(section: dict) -> dict:
    """The track-formation keys of a model's ``tracking`` section, checked."""
    p = {key: section.get(key, default) for key, default in TRACK_FORMATION.items()}
    _check(p["method"], p["k"])
    return p


#: What `select_threshold` maximises: the headline, the double-majority efficiency of the particles with
#: pT >= 0.9 GeV, |eta| < 4 and hits on >= 3 layers (`metrics.efficiency`, its default cuts).
OBJECTIVE = "dm_efficiency_pt0.9"
#: Per-hit fields of each selection event: truth for the TrackML score (particle_id, weight) and for the DM
#: efficiency (the particle's pt and pz, the hit's volume_id and layer_id; `train.locality.load_arrays`).
SELECTION_FIELDS = ("particle_id", "weight", "pt", "pz", "volume_id", "layer_id")


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


def select_threshold(events, params: dict, thresholds) -> tuple[float, list[dict]]:
    """The similarity threshold with the best DM efficiency at pT > 0.9 GeV (`OBJECTIVE`) on validation events.

    events: list of (event_id, embedding (hits, dim), blocks, fields) with the per-hit `SELECTION_FIELDS`;
    candidate edges are computed once per event and reused for every threshold. The efficiency pools the
    particles of all events (matched over selected, summed over events: not a mean of per-event ratios).
    Ties go to the higher TrackML score (mean over the events), then to the higher threshold; without any
    selected particle (no momenta, e.g. REDVID) the TrackML score decides. One grid row per threshold:
    threshold, dm_efficiency (None without selected particles), trackml_score, fake_rate, duplicate_rate
    and the pooled counts n_selected_particles, n_dm_matched.
    """
    import pandas as pd

    from ..metrics.efficiency import tracking_metrics
    from ..metrics.score import trackml_score

    if not events or not len(thresholds):
        raise ConfigError("threshold selection needs validation events and at least one threshold")
    truth, hits, particles = _selection_truth(events)
    prepared = [(event_id, blocks.n_hits, *candidate_edges(emb, blocks, method=params["method"], k=params["k"]))
                for event_id, emb, blocks, _ in events]
    rows = []
    for thr in sorted(float(t) for t in thresholds):
        sub = pd.concat([pd.DataFrame({"event_id": np.int64(e), "hit_id": np.arange(n),
                                       "track_id": tracks_from_edges(n, s, d, v, threshold=thr, mutual=params["mutual"])})
                         for e, n, s, d, v in prepared], ignore_index=True)
        m = tracking_metrics(hits, particles, sub)  # pooled over the events
        rows.append({"threshold": thr, "dm_efficiency": _finite(m["dm_efficiency"]),
                     "trackml_score": float(trackml_score(truth, sub)), "fake_rate": _finite(m["fake_rate"]),
                     "duplicate_rate": _finite(m["duplicate_rate"]),
                     "n_selected_particles": m["n_selected_particles"], "n_dm_matched": m["n_dm_matched"]})
    best = max(rows, key=lambda r: (-np.inf if r["dm_efficiency"] is None else r["dm_efficiency"],
                                    r["trackml_score"], r["threshold"]))
    return best["threshold"], rows


def _finite(x: float) -> float | None:
    """JSON-friendly rate: None where it is undefined (0/0)."""
    return None if np.isnan(x) else float(x)
