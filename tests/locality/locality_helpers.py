"""Hand-built locality events shared by the locality tests."""

import numpy as np
import pandas as pd

from trackpipe.locality.pipeline import LocalityResult
from trackpipe.locality.projection import project_to_surfaces


def toy_event():
    # A: hits 0-3, B: 4-6, C (low pT): 7-8, noise: 9, D (endcap): 10-12
    pid = np.array([1, 1, 1, 1, 2, 2, 2, 3, 3, 0, 4, 4, 4])
    hits = pd.DataFrame({"particle_id": pid, "volume_id": 8, "layer_id": np.arange(13) * 2,
                         "x": 50.0, "y": 1.0, "z": 0.0})
    particles = pd.DataFrame({"particle_id": [1, 2, 3, 4], "px": [1.0, 2.0, 0.5, 1.5], "py": 0.0,
                              "pz": [0.1, 0.2, 0.0, 9.0]})
    hit_region = np.array([0] * 10 + [1] * 3, np.int8)
    return hits, particles, hit_region


def result_of(members, hit_region, n_hits=13):
    idx = np.concatenate([np.asarray(m) for m in members])
    cl = np.concatenate([np.full(len(m), c) for c, m in enumerate(members)])
    region = np.array([hit_region[m[0]] for m in members], np.int8)
    proj = project_to_surfaces(pd.DataFrame({"x": np.ones(n_hits), "y": 0.0, "z": 0.0}))
    return LocalityResult(idx, cl, n_hits, len(members), hit_region, region, proj)
