"""Track assignment for the encoder models: most probable class (EncCla, JM; optionally after adapting the
class prior to the event) or HDBSCAN (EncReg).

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


def classes_with_noise_rule(logits: np.ndarray, noise_class: int, noise_probability: float | None,
                            prior_iterations: int = 0) -> np.ndarray:
    """Predicted class per hit from (hits, classes) logits whose last class is noise.

    noise_probability None: a hit is noise when the noise class is its argmax. Otherwise a hit is noise
    only when its noise probability reaches `noise_probability`: with thousands of track classes sharing
    the rest of the probability, plain argmax calls a hit noise at P(noise) = 0.1 when no single track
    class reaches 0.1, which splits tracks into singletons.

    The other hits take their most probable track class, after `prior_iterations` rounds of
    `event_prior_em` (0: the network's own posteriors, the papers' argmax).
    """
    return classes_from_probabilities(class_probabilities(logits), noise_class, noise_probability, prior_iterations)


def class_probabilities(logits: np.ndarray) -> np.ndarray:
    """Softmax of (hits, classes) logits in float64 (shifted, so large logits stay finite)."""
    logits = np.asarray(logits, np.float64)
    prob = np.exp(logits - logits.max(-1, keepdims=True))
    return prob / prob.sum(-1, keepdims=True)


def classes_from_probabilities(prob: np.ndarray, noise_class: int, noise_probability: float | None,
                               prior_iterations: int = 0, candidates: tuple[np.ndarray, np.ndarray] | None = None
                               ) -> np.ndarray:
    """`classes_with_noise_rule` on class probabilities. candidates: the event's `track_class_candidates`,
    which a selection over many grid points computes once per event."""
    if noise_probability is None:
        noise = prob.argmax(-1) == noise_class
    else:
        noise = prob[:, noise_class] >= float(noise_probability)
    keep = ~noise
    track = np.zeros(len(prob), np.int64)
    if keep.any():
        if int(prior_iterations) <= 0:
            track[keep] = _track_probabilities(prob, noise_class)[keep].argmax(-1)
        else:
            ids, p = candidates if candidates is not None else track_class_candidates(prob, noise_class)
            track[keep] = prior_em_on_candidates(ids[keep], p[keep], int(prior_iterations))
    track = track + (track >= noise_class)  # back to class ids (noise is the last class: no shift)
    return np.where(noise, noise_class, track)


def _track_probabilities(prob: np.ndarray, noise_class: int) -> np.ndarray:
    """The track classes' columns (a view when noise is the last class, as everywhere here)."""
    return prob[:, :noise_class] if noise_class == prob.shape[1] - 1 else np.delete(prob, noise_class, axis=1)


def track_class_candidates(prob: np.ndarray, noise_class: int, top_k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(ids, probabilities), each (hits, K): every hit's `top_k` (default `PRIOR_TOP_K`) most probable track
    classes, noise left out, as track-class indices (noise removed from the numbering)."""
    return top_candidates(_track_probabilities(prob, noise_class), PRIOR_TOP_K if top_k is None else top_k)


def top_candidates(prob: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, probabilities) of each row's `top_k` most probable columns (all columns when fewer)."""
    n_classes = prob.shape[1]
    k = min(int(top_k), n_classes)
    ids = np.argpartition(-prob, k - 1, axis=1)[:, :k] if k < n_classes else np.broadcast_to(
        np.arange(n_classes), prob.shape)
    return ids, np.take_along_axis(prob, ids, axis=1)


PRIOR_TOP_K = 64  # classes kept per hit in the EM: the rest hold a negligible share of a trained model's mass


def event_prior_em(prob: np.ndarray, iterations: int, top_k: int = PRIOR_TOP_K) -> np.ndarray:
    """Most probable class per hit after adapting the class prior to this one event by EM.

    prob: (hits, classes) posteriors of one event's hits. The network's posteriors assume the training
    prior, where each of thousands of classes is rare; one event holds only as many classes as particles,
    each with several hits. EM re-estimates the event's prior as the mean adapted posterior and reweights
    (Saerens, Latinne & Decaestecker 2002, "Adjusting the outputs of a classifier to new a priori
    probabilities", with the training prior taken as flat): a hit torn between neighbouring bins joins the
    bin its track's other hits chose, so a track is not split across bins. Per hit only the `top_k` most
    probable classes take part (renormalised), which keeps the cost at hits x top_k per iteration.
    iterations 0: plain argmax.
    """
    prob = np.asarray(prob, np.float64)
    if iterations <= 0 or len(prob) == 0:
        return prob.argmax(-1)
    return prior_em_on_candidates(*top_candidates(prob, top_k), int(iterations))


def prior_em_on_candidates(ids: np.ndarray, prob: np.ndarray, iterations: int) -> np.ndarray:
    """`event_prior_em` on each hit's candidate classes: ids (hits, K) non-negative class ids, prob (hits, K)
    their posteriors (renormalised over the K). Returns the chosen class id per hit."""
    ids = np.asarray(ids, np.int64)
    p = np.asarray(prob, np.float64)
    p = p / p.sum(-1, keepdims=True)
    n_classes = int(ids.max(initial=0)) + 1
    q = p
    for _ in range(int(iterations)):
        prior = np.bincount(ids.ravel(), weights=q.ravel(), minlength=n_classes) / len(q)
        q = p * prior[ids]
        q /= q.sum(-1, keepdims=True)
    return ids[np.arange(len(q)), q.argmax(-1)]


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
