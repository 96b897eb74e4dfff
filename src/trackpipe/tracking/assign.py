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


def classes_with_noise_rule(logits: np.ndarray, noise_class: int, noise_probability: float | None) -> np.ndarray:
    """Predicted class per hit from (hits, classes) logits whose last class is noise.

    noise_probability None: argmax over all classes. Otherwise a hit is noise only when its noise
    probability reaches `noise_probability`, and else its most probable track class: with thousands of
    track classes sharing the rest of the probability, plain argmax calls a hit noise at P(noise) = 0.1
    when no single track class reaches 0.1, which splits tracks into singletons.
    """
    logits = np.asarray(logits, np.float64)
    if noise_probability is None:
        return logits.argmax(-1)
    shifted = logits - logits.max(-1, keepdims=True)
    p_noise = np.exp(shifted[:, noise_class]) / np.exp(shifted).sum(-1)
    track = np.delete(logits, noise_class, axis=1).argmax(-1)
    track = track + (track >= noise_class)  # back to class ids (noise is the last class: no shift)
    return np.where(p_noise >= float(noise_probability), noise_class, track)


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
