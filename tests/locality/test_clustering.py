"""Clustering algorithms: phi wrap-around, references, coverage."""

import numpy as np
import pytest

from trackpipe.errors import ConfigError
from trackpipe.locality.clustering import ALGORITHMS, cluster_points

PERIOD = 2 * np.pi * 91.0

# parameters that resolve blobs of ~1 mm spread separated by > 20 mm
PARAMS = {
    "dbscan": {"eps": 1.5, "min_samples": 3, "v_scale": 1.0},
    "iterative_window": {"width_u": 8.0, "width_v": 8.0},
    "density_peaks": {"d_c": 1.5, "v_scale": 1.0, "delta_min": 6.0, "rho_min": 3},
    "grid_window": {"width_u": 10.0, "width_v": 10.0, "overlap_u": 0.5, "overlap_v": 0.5},
}


def _blobs(centres, n=25, spread=0.8, seed=0):
    rng = np.random.default_rng(seed)
    pts = np.concatenate([c + rng.normal(0, spread, size=(n, 2)) for c in centres])
    return pts, np.repeat(np.arange(len(centres)), n)


def _clusters_of(m, members):
    """Clusters containing all of `members`."""
    inside = np.isin(m.index, members)
    counts = np.bincount(m.cluster[inside], minlength=m.n_clusters)
    return np.flatnonzero(counts == len(members))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_cluster_straddling_phi_pi_is_one_cluster(algorithm):
    # blob 0 sits on the seam u = ±pi·R; the others elsewhere
    pts, truth = _blobs([(PERIOD / 2, 40.0), (0.0, 0.0), (100.0, -50.0), (-150.0, 30.0)])
    pts[:, 0] = (pts[:, 0] + PERIOD / 2) % PERIOD - PERIOD / 2
    seam = np.flatnonzero(truth == 0)
    assert (pts[seam, 0] > 0).any() and (pts[seam, 0] < 0).any()  # really on both sides
    m = cluster_points(pts, algorithm, PARAMS[algorithm], period=PERIOD)
    assert set(m.index.tolist()) == set(range(len(pts)))
    assert len(_clusters_of(m, seam)) >= 1, "the seam blob is split"
    if algorithm != "grid_window":  # disjoint algorithms: the seam blob is exactly one cluster
        labels = m.cluster[np.argsort(m.index)]
        for b in range(4):
            assert len(np.unique(labels[truth == b])) == 1
            assert (labels[truth != b] != labels[truth == b][0]).all()


def test_without_period_the_seam_blob_is_split():
    pts, truth = _blobs([(PERIOD / 2, 40.0)], seed=3)
    pts[:, 0] = (pts[:, 0] + PERIOD / 2) % PERIOD - PERIOD / 2
    m = cluster_points(pts, "dbscan", PARAMS["dbscan"], period=None)
    assert len(_clusters_of(m, np.arange(len(pts)))) == 0


def test_dbscan_matches_sklearn_without_period():
    from sklearn.cluster import DBSCAN

    pts, _ = _blobs([(0, 0), (3, 3), (30, 0)], spread=1.2, seed=5)
    m = cluster_points(pts, "dbscan", {"eps": 1.0, "min_samples": 4, "v_scale": 0.5})
    ref = DBSCAN(eps=1.0, min_samples=4).fit_predict(pts * [1.0, 0.5])
    ours = m.cluster[np.argsort(m.index)]
    # same partition; sklearn noise (-1) is a single-point cluster each here
    ref = np.where(ref < 0, 1000 + np.arange(len(ref)), ref)
    pairs = np.unique(np.stack([ours, ref]), axis=1)
    assert pairs.shape[1] == len(np.unique(ours)) == len(np.unique(ref))


@pytest.mark.parametrize("overlap", [0.0, 0.5, 0.75])
@pytest.mark.parametrize("period", [None, PERIOD])
def test_grid_windows_match_a_brute_force_reference(overlap, period):
    rng = np.random.default_rng(7)
    pts = np.column_stack([rng.uniform(-PERIOD / 2, PERIOD / 2, 400), rng.uniform(-100, 100, 400)])
    w = 20.0
    m = cluster_points(pts, "grid_window", {"width_u": w, "width_v": w, "overlap_u": overlap, "overlap_v": overlap},
                       period=period)
    got = {frozenset(m.index[m.cluster == c].tolist()) for c in range(m.n_clusters)}
    s = w * (1 - overlap)
    u0 = -PERIOD / 2 if period else pts[:, 0].min()
    if period:
        n_u = int(np.ceil(PERIOD / s))
        s_u = PERIOD / n_u
    else:
        n_u, s_u = int(np.ceil((np.ptp(pts[:, 0]) + w) / s)) + 1, s
    v0 = pts[:, 1].min()
    ref = set()
    du = (pts[:, 0] - u0)
    for a in range(-3 if period else 0, n_u + 1):  # windows start at u0 + k·s, k >= 0 (periodic: mod n_u)
        in_u = ((du - a * s_u) % PERIOD < w) if period else ((du >= a * s_u) & (du < a * s_u + w))
        for b in range(0, int(np.ptp(pts[:, 1]) / s) + 2):
            sel = in_u & (pts[:, 1] - v0 >= b * s) & (pts[:, 1] - v0 < b * s + w)
            if sel.any():
                ref.add(frozenset(np.flatnonzero(sel).tolist()))
    assert got == ref


def test_density_peaks_recovers_separated_blobs():
    pts, truth = _blobs([(0, 0), (20, 0), (0, 25), (-30, -30)], seed=2)
    m = cluster_points(pts, "density_peaks", PARAMS["density_peaks"])
    labels = m.cluster[np.argsort(m.index)]
    assert len(np.unique(labels)) == 4
    assert len(np.unique(np.stack([labels, truth]), axis=1).T) == 4


def test_iterative_window_respects_widths():
    rng = np.random.default_rng(4)
    pts = rng.uniform(0, 200, size=(2000, 2))
    m = cluster_points(pts, "iterative_window", {"width_u": 10.0, "width_v": 30.0, "n_iter": 0})
    for c in range(m.n_clusters):
        p = pts[m.index[m.cluster == c]]
        assert np.ptp(p[:, 0]) < 10.0 and np.ptp(p[:, 1]) < 30.0


def test_unknown_algorithm_or_key_is_a_config_error():
    with pytest.raises(ConfigError):
        cluster_points(np.zeros((3, 2)), "kmeans")
    with pytest.raises(ConfigError, match="epsilon"):
        cluster_points(np.zeros((3, 2)), "dbscan", {"epsilon": 1.0})
