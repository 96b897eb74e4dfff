"""Tiny TrackML-like pixel events for the contrastive tests: straight tracks from near the origin crossing
four barrel layers (volume 8), a few endcap tracks (volumes 7/9) and noise hits."""

from __future__ import annotations

import numpy as np
import pandas as pd

from trackpipe.io.store import normalise_event

BARREL_R = (32.0, 72.0, 116.0, 172.0)
ENDCAP_Z = (600.0, 700.0, 820.0, 960.0)

TINY_CONTRASTIVE = {
    "architecture": {"d_model": 16, "n_heads": 2, "d_ff": 32, "n_layers": 2},
    "training": {"batch_size": 2, "lr": 3e-3},
    "tracking": {"k": 4, "thresholds": [0.5, 0.9], "selection_events": 2},
    "contrastive": {"embedding_dim": 8},
}


def tiny_event(event_id: int, seed: int, n_barrel: int = 30, n_endcap: int = 8, n_noise: int = 5):
    rng = np.random.default_rng(seed)
    rows, parts = [], []
    pid = 0
    for kind, n in (("barrel", n_barrel), ("endcap", n_endcap)):
        for _ in range(n):
            pid += 1
            phi = rng.uniform(-np.pi, np.pi)
            if kind == "barrel":
                eta = rng.uniform(-0.8, 0.8)
            else:
                eta = rng.choice([-1, 1]) * rng.uniform(2.6, 3.2)
            pt = rng.uniform(0.3, 3.0)
            pz = pt * np.sinh(eta)
            vz = rng.normal(0, 5.0)
            parts.append((pid, 0.0, 0.0, vz, pt * np.cos(phi), pt * np.sin(phi), pz, 1, 4))
            if kind == "barrel":
                for layer, r in enumerate(BARREL_R):
                    z = vz + r * np.sinh(eta)
                    rows.append((r * np.cos(phi), r * np.sin(phi), z, 8, 2 * (layer + 1), pid))
            else:
                for layer, zz in enumerate(ENDCAP_Z):
                    z = np.sign(eta) * zz
                    r = (z - vz) / np.sinh(eta)
                    rows.append((r * np.cos(phi), r * np.sin(phi), z, 9 if z > 0 else 7, 2 * (layer + 1), pid))
    for _ in range(n_noise):
        phi, r = rng.uniform(-np.pi, np.pi), rng.choice(BARREL_R)
        rows.append((r * np.cos(phi), r * np.sin(phi), rng.uniform(-300, 300), 8, 2, 0))
    h = pd.DataFrame(rows, columns=["x", "y", "z", "volume_id", "layer_id", "particle_id"])
    h[["x", "y", "z"]] += rng.normal(0, 0.02, (len(h), 3))
    h = h.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    h.insert(0, "hit_id", np.arange(1, len(h) + 1))
    h["module_id"] = 1
    h["weight"] = np.where(h.particle_id > 0, 1.0 / max((h.particle_id > 0).sum(), 1), 0.0)
    p = pd.DataFrame(parts, columns=["particle_id", "vx", "vy", "vz", "px", "py", "pz", "q", "nhits"])
    return normalise_event(h, p, event_id=event_id)


def tiny_events(n: int, seed: int = 0):
    return [tiny_event(i + 1, seed * 1000 + i) for i in range(n)]
