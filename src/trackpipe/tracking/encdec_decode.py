"""Full-event EncDec reconstruction: batched autoregressive decoding from seeds, snapping to hits.

All open tracks of an event advance together: one decoder call per step for every open track (they
all have the same length, seeds being three hits). Each predicted position is snapped to the nearest
unused hit (KD-tree over the event's hits, `k_candidates` nearest within `snap_distance` mm); when
several tracks claim the same hit the nearest prediction wins and the others take their next
candidate (vectorised rounds). A track stops when its stop probability exceeds `stop_threshold`,
when no unused hit lies within `snap_distance`, or at `max_track_length` hits. The truth is never
read here: seeds come from `tracking.seeding` (truth seeds are the paper's evaluation protocol).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch
from scipy.spatial import cKDTree

from ..errors import ConfigError
from ..metrics import fit_accuracy, trackml_score
from .assign import singletons_for
from .seeding import geometric_seeds, truth_seeds
from .teacher import SEED_HITS, teacher_tracks

# The config section `tracking` of encdec (models.encdec.TRACKING is this dict):
#   seeds: geometric (no truth) | truth (paper protocol: first three true hits)
#   snap_distance: mm; no unused hit this close to the prediction ends the track
#   stop_threshold, k_candidates; seeding: overrides of tracking.seeding.SEEDING
TRACKING = {"seeds": "geometric", "snap_distance": 60.0, "stop_threshold": 0.5, "k_candidates": 8, "seeding": {}}


def _claim(cand: np.ndarray, dist: np.ndarray, used: np.ndarray) -> np.ndarray:
    """One unused hit per track from its candidate list (-1 if none); conflicts go to the nearest."""
    T, k = cand.shape
    choice = np.full(T, -1, np.int64)
    pointer = np.zeros(T, np.int64)
    pending = np.arange(T)
    while len(pending):
        c, dd = cand[pending], dist[pending]
        avail = (c >= 0) & ~used[np.where(c >= 0, c, 0)] & (np.arange(k)[None] >= pointer[pending, None])
        has = avail.any(axis=1)
        pending, avail, c, dd = pending[has], avail[has], c[has], dd[has]
        if not len(pending):
            break
        j = avail.argmax(axis=1)
        hit, d = c[np.arange(len(pending)), j], dd[np.arange(len(pending)), j]
        order = np.lexsort((d, hit))
        winner = np.zeros(len(pending), bool)
        winner[order[np.r_[True, hit[order][1:] != hit[order][:-1]]]] = True
        choice[pending[winner]] = hit[winner]
        used[hit[winner]] = True
        pointer[pending[~winner]] = j[~winner] + 1
        pending = pending[~winner]
    return choice


@torch.no_grad()
def decode_event(model, xyz: np.ndarray, seeds: np.ndarray, *, snap_distance: float = 60.0,
                 stop_threshold: float = 0.5, k_candidates: int = 8, max_length: int | None = None,
                 device=None) -> tuple[np.ndarray, dict]:
    """Track label per hit (-1 = no track) and {"device_s": model wall time, "device_cpu_s": its process
    time, "steps": decoder calls} for one event.

    xyz (N, 3) in mm; seeds (S, 3) hit indices (disjoint). Track s is labelled s.
    """
    device = device or next(model.parameters()).device
    xyz = np.array(xyz, np.float32)  # a writable copy for torch.from_numpy
    n = len(xyz)
    labels = np.full(n, -1, np.int64)
    max_length = max_length or model.max_track_length
    if len(seeds) == 0 or n == 0:
        return labels, {"device_s": 0.0, "device_cpu_s": 0.0, "steps": 0}
    x = (torch.from_numpy(xyz).to(device) - model.input_mean) / model.input_std
    t0, c0 = time.perf_counter(), time.process_time()
    memory = model.encode(x[None], torch.ones(1, n, dtype=torch.bool, device=device))
    device_s, device_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    tree = cKDTree(xyz)
    seq = np.asarray(seeds, np.int64)
    used = np.zeros(n, bool)
    used[seq.ravel()] = True
    S = len(seq)
    open_ = np.arange(S)
    extra = np.full((S, 0), -1, np.int64)
    steps = 0
    while len(open_) and seq.shape[1] + extra.shape[1] < max_length:
        current = np.concatenate([seq[open_], extra[open_]], axis=1)
        t0, c0 = time.perf_counter(), time.process_time()
        nxt, stop = model.decode(x[torch.from_numpy(current).to(device)], memory)
        pred = model.to_mm(nxt[:, -1]).float().cpu().numpy()
        p_stop = torch.sigmoid(stop[:, -1].float()).cpu().numpy()
        device_s += time.perf_counter() - t0
        device_cpu_s += time.process_time() - c0
        steps += 1
        dist, cand = tree.query(pred, k=min(k_candidates, n), distance_upper_bound=snap_distance)
        dist, cand = dist.reshape(len(open_), -1), cand.reshape(len(open_), -1)
        cand = np.where(np.isfinite(dist), cand, -1)
        choice = np.full(len(open_), -1, np.int64)
        go = p_stop <= stop_threshold
        choice[go] = _claim(cand[go], dist[go], used)
        extra = np.concatenate([extra, np.full((S, 1), -1, np.int64)], axis=1)
        extra[open_, -1] = choice
        open_ = open_[choice >= 0]
    full = np.concatenate([seq, extra], axis=1)
    track = np.repeat(np.arange(S), full.shape[1])
    flat = full.ravel()
    labels[flat[flat >= 0]] = track[flat >= 0]
    return labels, {"device_s": device_s, "device_cpu_s": device_cpu_s, "steps": steps}


def event_seeds(hits: pd.DataFrame, mode: str, seeding: dict | None = None) -> np.ndarray:
    xyz = hits[["x", "y", "z"]].to_numpy(np.float64)
    if mode == "truth":
        return truth_seeds(hits.particle_id.to_numpy(np.int64), xyz)
    if mode == "geometric":
        layer = hits.volume_id.to_numpy(np.int64) * 1000 + hits.layer_id.to_numpy(np.int64)
        return geometric_seeds(xyz, layer, seeding)
    raise ConfigError(f"tracking.seeds must be geometric or truth, not {mode!r}")


def reconstruct_event(model, hits: pd.DataFrame, tracking: dict, device=None) -> tuple[np.ndarray, np.ndarray, dict]:
    """(track id per hit, seed hit indices (S, 3), timing) with unassigned hits as singletons."""
    c0 = time.process_time()
    t = {**TRACKING, **tracking}
    seeds = event_seeds(hits, t["seeds"], t["seeding"])
    labels, info = decode_event(model, hits[["x", "y", "z"]].to_numpy(np.float32), seeds,
                                snap_distance=t["snap_distance"], stop_threshold=t["stop_threshold"],
                                k_candidates=t["k_candidates"], device=device)
    tracks = singletons_for(labels < 0, labels)
    info["host_cpu_s"] = max(0.0, time.process_time() - c0 - info["device_cpu_s"])
    return tracks, seeds, info


def next_hit_accuracy(model, hits: pd.DataFrame, margin: float = 0.05, device=None) -> tuple[int, int]:
    """(correct, total) next-hit predictions with teacher forcing on the event's true tracks: a
    prediction p of the true next hit t is correct iff |p - t| <= margin |t| (mm, from the origin)."""
    device = device or next(model.parameters()).device
    xyz = np.array(hits[["x", "y", "z"]].to_numpy(np.float32))
    _, seq, lengths = teacher_tracks(np.zeros(len(xyz), np.int64), hits.particle_id.to_numpy(np.int64),
                                     np.linalg.norm(xyz, axis=1), model.max_track_length)
    if len(seq) == 0:
        return 0, 0
    with torch.no_grad():
        x = (torch.from_numpy(xyz).to(device) - model.input_mean) / model.input_std
        memory = model.encode(x[None], torch.ones(1, len(xyz), dtype=torch.bool, device=device))
        seq_t = torch.from_numpy(seq).to(device)
        nxt, _ = model.decode(x[seq_t.clamp(min=0)], memory)
        pred = model.to_mm(nxt).cpu().numpy()
    pos = np.arange(seq.shape[1])[None]
    has_next = (pos >= SEED_HITS - 1) & (pos < lengths[:, None] - 1)
    true = xyz[seq[:, 1:][has_next[:, :-1]]]
    p = pred[:, :-1][has_next[:, :-1]]
    ok = np.linalg.norm(p - true, axis=1) <= margin * np.linalg.norm(true, axis=1)
    return int(ok.sum()), int(len(ok))


def seed_excluded_scores(hits: pd.DataFrame, track_ids: np.ndarray, seeds: np.ndarray) -> dict:
    """Paper protocol: TrackML score and FitAccuracy of one event with the seed hits left out of both
    the truth and the submission (they were given, not reconstructed)."""
    keep = np.ones(len(hits), bool)
    keep[np.asarray(seeds, np.int64).ravel()] = False
    truth = hits.loc[keep, ["event_id", "hit_id", "particle_id", "weight"]]
    sub = pd.DataFrame({"event_id": hits.event_id.to_numpy()[keep], "hit_id": hits.hit_id.to_numpy()[keep],
                        "track_id": np.asarray(track_ids)[keep]})
    return {"trackml_score": trackml_score(truth, sub), "fit_accuracy": fit_accuracy(truth, sub)}
