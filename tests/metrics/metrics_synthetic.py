"""Random events and submissions for the metric tests (pure numpy, seeded)."""

from __future__ import annotations

import numpy as np
import pandas as pd

MODES = ("truth", "split", "merge", "shuffle", "noise_tracks", "ties", "random", "mixed")


def random_event(rng, *, event_id=0, n_particles=25, max_hits=14, n_noise=15):
    """hits (event_id, hit_id, particle_id, weight, volume_id, layer_id) and particles (event_id,
    particle_id, px, py, pz, vz) with random, sparse, shuffled ids and unnormalised weights."""
    pids = np.unique(rng.integers(1, 2**40, size=n_particles)).astype(np.int64)
    n_particles = len(pids)
    nh = rng.integers(1, max_hits + 1, size=n_particles)
    hit_pid = np.concatenate([np.repeat(pids, nh), np.zeros(n_noise, np.int64)])
    n = len(hit_pid)
    weight = rng.uniform(0.0, 1.0, size=n) * (hit_pid != 0)
    weight[rng.random(n) < 0.1] = 0.0  # some zero-weight particle hits, as in real truth
    layer = np.concatenate([rng.permutation(12)[:k] for k in np.minimum(nh, 12)] + [rng.integers(0, 12, n_noise)])
    layer = np.resize(layer, n)  # particles with > 12 hits revisit layers
    hits = pd.DataFrame({
        "event_id": np.int64(event_id),
        "hit_id": rng.choice(np.arange(1, 10 * n + 1), size=n, replace=False).astype(np.int64),
        "particle_id": hit_pid,
        "weight": weight,
        "volume_id": np.where(layer < 6, 8, 13).astype(np.int32),
        "layer_id": (2 * (layer % 6) + 2).astype(np.int32),
    }).sample(frac=1.0, random_state=int(rng.integers(1 << 31))).reset_index(drop=True)
    pt = rng.exponential(1.0, n_particles)
    phi = rng.uniform(-np.pi, np.pi, n_particles)
    eta = rng.uniform(-5, 5, n_particles)
    particles = pd.DataFrame({"event_id": np.int64(event_id), "particle_id": pids, "px": pt * np.cos(phi),
                              "py": pt * np.sin(phi), "pz": pt * np.sinh(eta), "vz": rng.normal(0, 50, n_particles)})
    return hits, particles


def random_tracks(rng, hits: pd.DataFrame, mode: str) -> np.ndarray:
    """A track id per hit of `hits` built by `mode` (see MODES)."""
    pid = hits.particle_id.to_numpy()
    n = len(pid)
    if mode == "truth":
        labels = pid.copy()
    elif mode == "split":
        labels = pid * 4 + rng.integers(0, rng.integers(1, 4), size=n)
    elif mode == "merge":
        uniq = np.unique(pid)
        partner = dict(zip(uniq, rng.permutation(len(uniq)) // 2))
        labels = np.array([partner[p] for p in pid])
    elif mode == "shuffle":
        labels = pid.copy()
        moved = rng.random(n) < rng.uniform(0.05, 0.6)
        labels[moved] = rng.choice(np.unique(pid), size=moved.sum())
    elif mode == "noise_tracks":
        labels = pid.copy()
        noise = np.flatnonzero(pid == 0)
        labels[noise] = -1 - rng.integers(0, 4, size=len(noise))  # several all-noise tracks
        labels = labels - labels.min()
    elif mode == "ties":
        labels = _tied_tracks(rng, pid)
    elif mode == "random":
        labels = rng.integers(0, max(2, n // 5), size=n)
    elif mode == "mixed":
        labels = random_tracks(rng, hits, "split")
        moved = rng.random(n) < 0.2
        labels[moved] = rng.choice(labels, size=moved.sum())
    else:
        raise ValueError(mode)
    # Arbitrary non-negative track ids, unrelated to the particle ids.
    _, inverse = np.unique(labels, return_inverse=True)
    relabel = rng.permutation(10 * (inverse.max() + 1))[: inverse.max() + 1]
    return relabel[inverse].astype(np.int64)


def _tied_tracks(rng, pid):
    """Pairs of particles put k hits each into one shared track (a tie), the rest in their own tracks."""
    labels = pid * 2 + 1
    uniq = rng.permutation(np.unique(pid))
    for a, b in zip(uniq[0::2], uniq[1::2]):
        ia, ib = np.flatnonzero(pid == a), np.flatnonzero(pid == b)
        k = min(len(ia), len(ib), int(rng.integers(1, 4)))
        shared = np.concatenate([rng.choice(ia, k, replace=False), rng.choice(ib, k, replace=False)])
        labels[shared] = a * 2
    return labels


def submission_for(hits: pd.DataFrame, tracks: np.ndarray, rng=None) -> pd.DataFrame:
    sub = pd.DataFrame({"event_id": hits.event_id.to_numpy(), "hit_id": hits.hit_id.to_numpy(), "track_id": tracks})
    if rng is not None:
        sub = sub.sample(frac=1.0, random_state=int(rng.integers(1 << 31))).reset_index(drop=True)
    return sub
