"""Helix test of track formation (tracking.helix): the additive sums give the least-squares residuals of
a direct fit, on either side of phi = +-pi; the greedy with the helix test equals a sequential reference;
triplet support equals brute force; real helices from the simulator pass and mixed hits fail."""

from __future__ import annotations

import numpy as np
import pytest

from trackpipe.errors import ConfigError, DataError
from trackpipe.tracking.helix import (HelixTest, branch_shift, calibrate_tolerance, fit_rss, helix_sums, hit_geometry,
                                      neighbour_lists, rephased, triplet_rss, triplet_supported)


def direct_rss(xyz):
    """Reference: phi = phi0 + c r weighted by r² (residual r dphi) and z = z0 + t r, with numpy.polyfit."""
    r = np.hypot(xyz[:, 0], xyz[:, 1])
    phi = np.unwrap(np.arctan2(xyz[:, 1], xyz[:, 0])[np.argsort(r)])
    r_sorted, z = np.sort(r), xyz[np.argsort(r), 2]
    fit = np.polyfit(r_sorted, phi, 1, w=r_sorted)  # polyfit weights multiply the residual: w = r -> r² in RSS
    rss_t = np.sum((r_sorted * (phi - np.polyval(fit, r_sorted))) ** 2)
    rss_z = np.sum((z - np.polyval(np.polyfit(r_sorted, z, 1), r_sorted)) ** 2)
    return rss_t, rss_z


def set_sums(xyz):
    sums, phi = helix_sums(xyz)
    return (sums[0] + rephased(sums[1:], branch_shift(phi[1:], np.full(len(phi) - 1, phi[0]))).sum(0))[None]


@pytest.mark.parametrize("phi0", [0.3, np.pi - 0.01, -np.pi + 0.005])
def test_sums_give_the_direct_least_squares_residuals_across_the_branch_cut(phi0):
    rng = np.random.default_rng(1)
    r = np.array([32.0, 72.0, 116.0, 172.0, 55.0])
    phi = phi0 + 3e-4 * r + rng.normal(0, 2e-4, len(r))   # a bending track with noise, across +-pi for two cases
    z = -20.0 + 0.7 * r + rng.normal(0, 0.3, len(r))
    xyz = np.stack([r * np.cos(phi), r * np.sin(phi), z], 1)
    rss_t, rss_z = fit_rss(set_sums(xyz))
    ref_t, ref_z = direct_rss(xyz)
    assert ref_t > 1e-4 and ref_z > 1e-3  # the noise is seen
    assert rss_t[0] == pytest.approx(ref_t, rel=1e-6) and rss_z[0] == pytest.approx(ref_z, rel=1e-6)


def test_triplet_rss_equals_the_sums_of_its_hits():
    rng = np.random.default_rng(2)
    xyz, _, layer = helix_hits(rng, 40)
    a, b, c = rng.integers(0, len(xyz), (3, 400))
    three_layers = (layer[a] != layer[b]) & (layer[a] != layer[c]) & (layer[b] != layer[c])
    a, b, c = a[three_layers], b[three_layers], c[three_layers]
    r, phi, z = hit_geometry(xyz)
    got_t, got_z = triplet_rss(a, b, c, r, phi, z)
    sums, phis = helix_sums(xyz)
    total = sums[a] + rephased(sums[b], branch_shift(phis[b], phis[a])) + rephased(sums[c], branch_shift(phis[c], phis[a]))
    ref_t, ref_z = fit_rss(total)
    assert np.allclose(got_t, ref_t, rtol=1e-7, atol=1e-9) and np.allclose(got_z, ref_z, rtol=1e-7, atol=1e-9)
    assert (ref_t > 1).mean() > 0.5  # mostly hits of different tracks: large residuals


def test_two_hits_always_fit_and_hits_at_one_radius_do_not_divide_by_zero():
    xyz = np.array([[50.0, 0.0, 10.0], [0.0, 90.0, -300.0]])
    assert np.allclose(fit_rss(set_sums(xyz)), 0.0, atol=1e-9)
    same_r = np.array([[50.0, 0.0, 10.0], [0.0, 50.0, 12.0], [-50.0, 0.0, 14.0]])
    t, z = fit_rss(set_sums(same_r))
    assert np.isfinite(t).all() and np.isfinite(z).all() and t[0] > 1.0


def sequential_greedy_with_helix(n, src, dst, sim, layer, xyz, tolerance):
    """Reference: Kruskal's order, one hit per layer, and the joined set refitted from its hits."""
    parent = list(range(n))
    members = {i: [i] for i in range(n)}

    def find(a):
        while parent[a] != a:
            a = parent[a]
        return a

    for e in np.argsort(-np.asarray(sim, np.float64), kind="stable"):
        a, b = find(int(src[e])), find(int(dst[e]))
        if a == b or set(layer[members[a]]) & set(layer[members[b]]):
            continue
        joined = members[a] + members[b]
        if len(joined) >= 3:
            t, z = direct_rss(xyz[joined])
            if t > tolerance[0] or z > tolerance[1]:
                continue
        parent[b] = a
        members[a] = joined
    return np.array([find(i) for i in range(n)])


def helix_hits(rng, n_tracks, radii=(32.0, 72.0, 116.0, 172.0)):
    r = np.tile(radii, n_tracks)
    track = np.repeat(np.arange(n_tracks), len(radii))
    phi0, c = rng.uniform(-np.pi, np.pi, n_tracks)[track], rng.uniform(-3e-4, 3e-4, n_tracks)[track]
    z0, t = rng.normal(0, 50, n_tracks)[track], rng.uniform(-2, 2, n_tracks)[track]
    phi = phi0 + c * r + rng.normal(0, 1e-4, len(r))
    z = z0 + t * r + rng.normal(0, 0.05, len(r))
    layer = np.tile(np.arange(len(radii)), n_tracks)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], 1), track, layer


@pytest.mark.parametrize("seed", [0, 1])
def test_helix_greedy_equals_a_sequential_reference_that_refits(seed):
    from trackpipe.tracking.embedding import layer_constrained_components

    rng = np.random.default_rng(seed)
    # crowded: 30 tracks squeezed into a narrow phi range, so that wrong joins are geometrically possible
    xyz, track, layer = helix_hits(rng, 30)
    r, phi = np.hypot(xyz[:, 0], xyz[:, 1]), np.arctan2(xyz[:, 1], xyz[:, 0]) * 0.01
    xyz = np.stack([r * np.cos(phi), r * np.sin(phi), xyz[:, 2] * 0.05], 1)
    n = len(track)
    src, dst = rng.integers(0, n, 2500), rng.integers(0, n, 2500)
    sim = rng.choice(np.linspace(0, 1, 40), len(src))
    sim = np.where(track[src] == track[dst], np.minimum(sim + 0.3, 1.0), sim)  # true edges tend to rank higher
    tolerance = (0.01, 0.5)
    sums, phis = helix_sums(xyz)
    got = layer_constrained_components(n, src, dst, sim, layer, 1, helix=(sums, phis, tolerance))
    ref = sequential_greedy_with_helix(n, src, dst, sim, layer, xyz, tolerance)
    pairs = np.unique(np.stack([got, ref]), axis=1)
    assert len(pairs[0]) == len(np.unique(got)) == len(np.unique(ref))
    sizes = np.bincount(np.unique(got, return_inverse=True)[1])
    assert sizes.max() >= 3  # the test did build tracks
    without = layer_constrained_components(n, src, dst, sim, layer, 1)
    assert len(np.unique(without)) < len(np.unique(got))  # the helix test vetoed joins


def test_triplet_support_equals_brute_force():
    rng = np.random.default_rng(3)
    xyz, track, layer = helix_hits(rng, 12)
    n = len(track)
    src, dst = rng.integers(0, n, 300), rng.integers(0, n, 300)
    src[:40], dst[:40] = np.arange(40), np.arange(40) ^ 1  # some true pairs (hits 2k, 2k+1 of one track)
    tolerance = (0.02, 0.2)
    r, phi, z = hit_geometry(xyz)
    ptr, mates = neighbour_lists(n, src, dst)
    got = triplet_supported(src, dst, ptr, mates, r, phi, z, layer, tolerance)
    neighbours = [set(dst[src == i].tolist()) for i in range(n)]
    ref = []
    for a, b in zip(src, dst):
        ok = False
        for c in neighbours[a] | neighbours[b]:
            if c in (a, b) or layer[c] in (layer[a], layer[b]):
                continue
            t, z = direct_rss(xyz[[a, b, c]])
            ok |= t <= tolerance[0] and z <= tolerance[1]
        ref.append(ok)
    assert np.array_equal(got, np.array(ref))
    assert 0 < got.sum() < len(got)


def test_real_trackml_particles_are_helices_and_mixed_hits_are_not(trackml_event):
    """The real TrackML event's pixel particles above 0.9 GeV (real resolution, material, double hits on
    overlapping modules: one hit per layer kept) fit the two lines to well under a millimetre, and
    replacing one hit by the nearest hit of another particle on the same layer fails the 99 % tolerance
    for most of them."""
    import pandas as pd

    from trackpipe.locality.events import pixel_hits
    from trackpipe.tracking.embedding import hit_layers

    hits = pixel_hits(trackml_event.hits)
    p = trackml_event.particles.set_index("particle_id")
    pt = hits.particle_id.map(pd.Series(np.hypot(p.px, p.py).to_numpy(), index=p.index)).fillna(0.0).to_numpy()
    xyz, pid, layer = hits[["x", "y", "z"]].to_numpy(np.float64), hits.particle_id.to_numpy(), hit_layers(hits)
    tolerance = calibrate_tolerance([(xyz, pid, pt, layer)], 0.99)
    assert tolerance is not None and tolerance[0] < 0.5 and tolerance[1] < 5.0  # mm²: sub-millimetre residuals
    phi = np.arctan2(xyz[:, 1], xyz[:, 0])
    passed, mixed_passed, n = 0, 0, 0
    for q in np.unique(pid[(pid > 0) & (pt > 0.9)]):
        idx = np.flatnonzero(pid == q)
        idx = idx[np.unique(layer[idx], return_index=True)[1]]  # one hit per layer
        if len(idx) < 4:
            continue
        t, z = direct_rss(xyz[idx])
        passed += t <= tolerance[0] and z <= tolerance[1]
        # the nearest-in-phi hit of another particle on the layer of idx[1]
        others = np.flatnonzero((layer == layer[idx[1]]) & (pid != q))
        if not len(others):
            continue
        swap = others[np.argmin(np.abs(np.remainder(phi[others] - phi[idx[1]] + np.pi, 2 * np.pi) - np.pi))]
        t, z = direct_rss(xyz[np.r_[idx[0], swap, idx[2:]]])
        mixed_passed += t <= tolerance[0] and z <= tolerance[1]
        n += 1
    assert n >= 20
    assert passed >= 0.9 * n and mixed_passed <= 0.2 * n


def test_bad_tolerances_and_missing_coordinates_fail_clearly():
    from trackpipe.tracking.embedding import tracking_params, tracks_from_embedding
    from trackpipe.locality.blocks import build_blocks

    with pytest.raises(ConfigError, match="helix_tolerance"):
        tracking_params({"helix_tolerance": [0.01]})
    with pytest.raises(ConfigError, match="> 0"):
        tracking_params({"helix_tolerance": [0.01, -1]})
    with pytest.raises(ConfigError, match="max_hits_per_layer"):
        tracking_params({"helix_tolerance": [0.01, 1.0], "max_hits_per_layer": 0})
    with pytest.raises(ConfigError, match="quantile"):
        calibrate_tolerance([], 1.5)
    emb = np.eye(4, dtype=np.float32)
    blocks = build_blocks(np.arange(4), np.zeros(4, int), 4)
    with pytest.raises(DataError, match="x, y, z"):
        tracks_from_embedding(emb, blocks, max_hits_per_layer=1, layer=np.arange(4), helix_tolerance=[0.01, 1.0])
    with pytest.raises(ConfigError, match="tolerance"):
        HelixTest(np.zeros((4, 3)), None)


def test_calibration_is_the_quantile_of_true_particles_one_hit_per_layer():
    rng = np.random.default_rng(4)
    xyz, track, layer = helix_hits(rng, 25)
    pid = 4_500_000_000_000_000_000 - track.astype(np.int64) * 1_000_003  # 64-bit ids like TrackML's
    pt = np.where(track < 20, 2.0, 0.5)  # five particles below 0.9 GeV do not count
    dup = np.flatnonzero(layer == 0)[:5]  # a second hit on a layer (overlapping modules) is left out
    xyz2 = np.concatenate([xyz, xyz[dup] + [0.0, 0.0, 40.0]])
    pid2, pt2, layer2 = np.r_[pid, pid[dup]], np.r_[pt, pt[dup]], np.r_[layer, layer[dup]]
    ref = np.array([direct_rss(xyz[track == t]) for t in range(20)])
    t_max, z_max = calibrate_tolerance([(xyz2, pid2, pt2, layer2)], 1.0)
    assert t_max == pytest.approx(ref[:, 0].max(), rel=1e-6) and z_max == pytest.approx(ref[:, 1].max(), rel=1e-6)
    t_med, _ = calibrate_tolerance([(xyz2, pid2, pt2, layer2)], 0.5)
    assert t_med == pytest.approx(np.quantile(ref[:, 0], 0.5), rel=1e-6)
    assert calibrate_tolerance([(xyz, pid, np.zeros(len(pid)), layer)], 0.99) is None  # no particle above 0.9 GeV


def test_sorted_unique_is_np_unique():
    from trackpipe.tracking.helix import _sorted_unique

    keys = np.random.default_rng(3).integers(0, 50, 400)
    assert np.array_equal(_sorted_unique(keys), np.unique(keys))
    assert _sorted_unique(np.zeros(0, np.int64)).shape == (0,)
