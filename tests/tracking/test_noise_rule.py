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
