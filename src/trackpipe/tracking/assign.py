"""Track assignment for the encoder models: argmax class (EncCla, JM) or HDBSCAN (EncReg).

Hits a model calls noise (the noise class, HDBSCAN's label -1) become single-hit tracks of their own:
lumping them into one big track would let true hits mislabelled as noise share a track.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError


def singletons_for(noise: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Replace labels of `noise` hits by fresh ids above every real label (non-negative ids)."""
    out = labels.astype(np.int64).copy()
    start = int(out[~noise].max()) + 1 if (~noise).any() else 0
    out[noise] = start + np.arange(int(noise.sum()))
    return out


def tracks_from_classes(classes: np.ndarray, noise_class: int) -> np.ndarray:
    """Track id per hit = its predicted class; predicted-noise hits become singletons."""
    classes = np.asarray(classes, np.int64)
    return singletons_for(classes == noise_class, classes)


def cluster_hdbscan(points: np.ndarray, *, min_cluster_size: int, min_samples: int) -> np.ndarray:
    """HDBSCAN labels (Euclidean; -1 = noise) with the `hdbscan` package, single-threaded core distances
    (the job's thread budget belongs to torch; REFERENCE 10.4: fastest exact implementation here)."""
    import hdbscan

    if min_cluster_size < 2:
        raise ConfigError(f"min_cluster_size must be >= 2, not {min_cluster_size}")
    n = len(points)
    if n < max(min_cluster_size, 2):
        return np.full(n, -1, np.int64)
    clusterer = hdbscan.HDBSCAN(min_cluster_size=int(min_cluster_size), min_samples=int(min_samples),
                                metric="euclidean", core_dist_n_jobs=1)
    return clusterer.fit_predict(np.asarray(points, np.float64)).astype(np.int64)


def tracks_from_regression(points: np.ndarray, *, min_cluster_size: int, min_samples: int) -> np.ndarray:
    labels = cluster_hdbscan(points, min_cluster_size=min_cluster_size, min_samples=min_samples)
    return singletons_for(labels < 0, labels)
