"""A tiny REDVID-like generator (straight tracks from the origin through barrel cylinders).

For the tests and the encoder benchmark on branches where the simulator (`trackpipe.sim.redvid`) is not
available. Events use the REDVID store mapping (volume_id 2 = barrel, layer_id = layer, particle_id =
track + 1, weight 1 for track hits and 0 for noise) and linear track parameters r_0..z_d, so they go
through the same targets as the published REDVID linear sets.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..io.store import normalise_event

BARREL_CODE = 2


def linear_event(event_id: int, rng: np.random.Generator, *, n_tracks: int, radii=tuple(range(10, 100, 10)),
                 half_length: float = 100.0, cot_range: float = 1.0, smear: float = 0.0,
                 noise_hits: int = 0):
    """One event: n_tracks straight tracks, one hit per crossed cylinder, plus uniform noise hits."""
    radii = np.asarray(radii, np.float64)
    theta_d = rng.uniform(-np.pi, np.pi, n_tracks)
    cot = rng.uniform(-cot_range, cot_range, n_tracks)
    polar = np.pi / 2 - np.arctan(cot)
    r_d, z_d = np.sin(polar), np.cos(polar)
    r = np.broadcast_to(radii, (n_tracks, len(radii)))
    z = r * cot[:, None]
    inside = np.abs(z) <= half_length
    track, layer = np.nonzero(inside)
    rr, zz, th = r[inside], z[inside], theta_d[track]
    x = rr * np.cos(th) + rng.normal(0, smear, len(rr))
    y = rr * np.sin(th) + rng.normal(0, smear, len(rr))
    zz = zz + rng.normal(0, smear, len(rr))
    pid = track + 1
    if noise_hits:
        nl = rng.integers(0, len(radii), noise_hits)
        nphi = rng.uniform(-np.pi, np.pi, noise_hits)
        x = np.r_[x, radii[nl] * np.cos(nphi)]
        y = np.r_[y, radii[nl] * np.sin(nphi)]
        zz = np.r_[zz, rng.uniform(-half_length, half_length, noise_hits)]
        layer = np.r_[layer, nl]
        pid = np.r_[pid, np.zeros(noise_hits, np.int64)]
    order = rng.permutation(len(x))  # hit order carries no information
    n = len(x)
    hits = pd.DataFrame({"hit_id": np.arange(1, n + 1), "x": x[order], "y": y[order], "z": zz[order],
                         "volume_id": BARREL_CODE, "layer_id": layer[order] + 1, "module_id": 0,
                         "particle_id": pid[order], "weight": (pid[order] > 0).astype(np.float32)})
    kept = np.unique(track) if len(track) else np.array([], np.int64)
    nhits = np.bincount(track, minlength=n_tracks)[kept]
    zeros = np.zeros(len(kept))
    particles = pd.DataFrame({"particle_id": kept + 1, "vx": zeros, "vy": zeros, "vz": zeros, "px": zeros,
                              "py": zeros, "pz": zeros, "q": 0, "nhits": nhits, "track_type": "linear",
                              "r_0": zeros, "theta_0": zeros, "z_0": zeros, "r_d": r_d[kept],
                              "theta_d": theta_d[kept], "z_d": z_d[kept]})
    return normalise_event(hits, particles, event_id=event_id)


def linear_events(n_events: int, *, seed: int, min_tracks: int = 10, max_tracks: int = 50, first_id: int = 0,
                  **kwargs):
    """Events with a uniform number of tracks in [min_tracks, max_tracks] (REDVID 10-50 style)."""
    rng = np.random.default_rng(seed)
    for i in range(n_events):
        yield linear_event(first_id + i, rng, n_tracks=int(rng.integers(min_tracks, max_tracks + 1)), **kwargs)
