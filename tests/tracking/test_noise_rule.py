"""Classifiers' noise rule: noise only when P(noise) reaches the chosen probability."""

from __future__ import annotations

import numpy as np

from trackpipe.tracking.assign import classes_with_noise_rule


def test_noise_only_when_its_probability_reaches_the_threshold():
    noise = 4
    # hit 0: noise has the largest logit but only P ~ 0.32 (four track classes share the rest)
    # hit 1: noise is certain; hit 2: a clear track class
    logits = np.log(np.array([[0.17, 0.17, 0.17, 0.17, 0.32],
                              [0.01, 0.01, 0.01, 0.01, 0.96],
                              [0.05, 0.80, 0.05, 0.05, 0.05]]))
    np.testing.assert_array_equal(classes_with_noise_rule(logits, noise, None), [4, 4, 1])
    np.testing.assert_array_equal(classes_with_noise_rule(logits, noise, 0.5), [0, 4, 1])
    np.testing.assert_array_equal(classes_with_noise_rule(logits, noise, 0.3), [4, 4, 1])
    np.testing.assert_array_equal(classes_with_noise_rule(logits, noise, 0.99), [0, 0, 1])
    # large logits stay finite (softmax on shifted values)
    big = logits * 1000
    assert classes_with_noise_rule(big, noise, 0.5)[1] == noise


def _dense_prior_em(prob, iterations):
    """Reference: the EM of `event_prior_em` over every class, written out directly."""
    q = prob / prob.sum(-1, keepdims=True)
    for _ in range(iterations):
        prior = q.mean(0)
        q = prob * prior
        q /= q.sum(-1, keepdims=True)
    return q.argmax(-1)


def test_event_prior_em_joins_a_hit_torn_between_neighbouring_bins_to_its_tracks_bin():
    from trackpipe.tracking.assign import event_prior_em

    # one particle's four hits lean to class 0; the fourth leans slightly to the neighbouring class 1
    prob = np.array([[0.60, 0.40, 0.00], [0.60, 0.40, 0.00], [0.60, 0.40, 0.00], [0.45, 0.55, 0.00],
                     [0.00, 0.05, 0.95]]) + 1e-9
    np.testing.assert_array_equal(event_prior_em(prob, 0), [0, 0, 0, 1, 2])
    np.testing.assert_array_equal(event_prior_em(prob, 5), [0, 0, 0, 0, 2])
    # a lone hit of a class nobody else shares keeps it when it is confident
    assert event_prior_em(prob, 50)[4] == 2


def test_event_prior_em_matches_the_dense_reference():
    from trackpipe.tracking.assign import event_prior_em

    rng = np.random.default_rng(3)
    n_classes = 40
    centre = rng.integers(0, n_classes, size=12)        # 12 particles
    hit_class = np.repeat(centre, 4)                    # 4 hits each
    logits = rng.normal(0, 0.5, (len(hit_class), n_classes))
    logits[np.arange(len(hit_class)), hit_class] += 4.0    # peaked like a trained model's posteriors,
    logits[np.arange(len(hit_class)), (hit_class + 1) % n_classes] += 3.6  # torn with the next bin
    prob = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    for it in (1, 5, 20):
        np.testing.assert_array_equal(event_prior_em(prob, it, top_k=n_classes), _dense_prior_em(prob, it))
    # keeping the 16 most probable classes per hit changes nothing here
    np.testing.assert_array_equal(event_prior_em(prob, 20, top_k=16), _dense_prior_em(prob, 20))
    # and the EM recovers more of the true classes than the argmax
    assert (event_prior_em(prob, 20) == hit_class).mean() > (prob.argmax(-1) == hit_class).mean()


def test_noise_rule_keeps_noise_hits_out_of_the_prior_and_selection_chooses_the_em_when_it_scores():
    from trackpipe.tracking.selection import select_class_rule

    noise = 3
    p = np.array([[0.55, 0.40, 0.00, 0.05], [0.55, 0.40, 0.00, 0.05], [0.40, 0.55, 0.00, 0.05],
                  [0.00, 0.00, 0.10, 0.90], [0.00, 0.00, 0.10, 0.90]]) + 1e-9
    logits = np.log(p)
    np.testing.assert_array_equal(classes_with_noise_rule(logits, noise, 0.5, 0), [0, 0, 1, 3, 3])
    np.testing.assert_array_equal(classes_with_noise_rule(logits, noise, 0.5, 10), [0, 0, 0, 3, 3])
    particle = np.array([7, 7, 7, 0, 0])
    weight = np.full(5, 0.2)
    best, rows = select_class_rule([(logits, particle, weight)], noise_probability=[None, 0.5],
                                   prior_iterations=[0, 10], noise_class=noise)
    assert len(rows) == 4 and best["prior_iterations"] == 10
    by = {(r["noise_probability"], r["prior_iterations"]): r["val_score"] for r in rows}
    assert by[(0.5, 10)] > by[(0.5, 0)]
