import numpy as np
import pandas as pd
import pytest

from trackpipe.io.trackml import TrackMLSource
from trackpipe.weights import ORDER_MATRIX, hit_weights, particle_generation, weight_pt


def test_pt_weight_examples():
    np.testing.assert_allclose(weight_pt([0.01, 0.1, 1.0, 2.0, 3.0, 10.0]), [0, 0.2, 0.36, 0.68, 1.0, 1.0])


def test_order_rows_from_reference():
    np.testing.assert_allclose(ORDER_MATRIX[4, :4], [0.411, 0.219, 0.123, 0.247], atol=1e-3)
    np.testing.assert_allclose(ORDER_MATRIX[10, :10], [.184, .151, .118, .098, .071, .055, .055, .063, .094, .110],
                               atol=1e-3)
    assert (ORDER_MATRIX[:4] == 0).all()
    np.testing.assert_allclose(ORDER_MATRIX[4:].sum(axis=1), 1.0)


def _real(trackml_dir):
    s = TrackMLSource(trackml_dir)
    return s.read_part(1, "truth"), s.read_part(1, "particles")


def test_phase2_weights_proportional_to_file(trackml_dir):
    truth, particles = _real(trackml_dir)
    w = hit_weights(truth, particles, phase=2)
    f = truth.weight.to_numpy(np.float64)
    assert w.sum() == pytest.approx(1.0)
    # The sub-sampled file was not renormalised: the weights are proportional, with the same zeros.
    np.testing.assert_array_equal(w > 0, f > 0)
    ratio = w[f > 0] / f[f > 0]
    assert ratio.std() / ratio.mean() < 1e-5
    assert f.sum() == pytest.approx(0.0513, abs=1e-3)


def test_phase1_differs_only_on_secondaries(trackml_dir):
    truth, particles = _real(trackml_dir)
    w1 = hit_weights(truth, particles, phase=1, normalise=False)
    w2 = hit_weights(truth, particles, phase=2, normalise=False)
    secondary = particle_generation(truth.particle_id) != 0
    assert secondary.any() and (w1[secondary] > 0).any()
    np.testing.assert_array_equal(w1[~secondary], w2[~secondary])
    assert (w2[secondary] == 0).all()


def test_short_particles_and_noise_get_zero():
    particles = pd.DataFrame({"particle_id": [1, 2], "vz": [0.0, 0.0], "px": [5.0, 5.0], "py": [0.0, 0.0]})
    truth = pd.DataFrame({"particle_id": [1, 1, 1, 2, 2, 2, 2, 0], "tz": [1, 2, 3, 4, 3, 2, 1, 0.0]})
    w = hit_weights(truth, particles, normalise=False)
    assert (w[:3] == 0).all() and w[7] == 0
    # particle 2 ordered by |tz - vz|: hit with tz=1 is first.
    np.testing.assert_allclose(w[3:7], ORDER_MATRIX[4, [3, 2, 1, 0]])
