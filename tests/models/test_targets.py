"""Targets: quantile classes, noise class, normalisation, parameter sets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from trackpipe.errors import ConfigError, DataError
from trackpipe.targets import Preprocessing, detect_kind, fit_edges, fit_preprocessing, hit_parameters
from train_helpers import linear_events  # tests/train (every test folder is on sys.path)


def test_quantile_edges_balance_the_bins():
    x = np.random.default_rng(0).exponential(size=10_000)
    edges = fit_edges(x, 8)
    counts = np.bincount(np.searchsorted(edges, x, side="right"), minlength=8)
    assert len(edges) == 7 and counts.min() >= 1240 and counts.max() <= 1260


def test_discrete_parameter_gets_one_bin_per_value():
    q = np.array([-1.0] * 30 + [1.0] * 70)
    edges = fit_edges(q, 2)
    assert edges.tolist() == [0.0]
    assert np.searchsorted(edges, [-1.0, 1.0], side="right").tolist() == [0, 1]


def _tables(n=30, seed=0, noise=0.05):
    events = list(linear_events(n, seed=seed, tracks=(5, 10), noise_fraction=noise))
    hits = pd.concat([e.hits for e in events], ignore_index=True)
    parts = pd.concat([e.particles for e in events], ignore_index=True)
    return hits, parts


def test_redvid_linear_classes_and_targets():
    hits, parts = _tables()
    assert detect_kind(parts) == "redvid-linear"
    prep = fit_preprocessing(hits, parts, bins={"theta_d": 4, "polar": 3})
    assert prep.n_track_classes == 12 and prep.noise_class == 12 and prep.n_classes == 13
    enc = prep.encode(hits, parts)
    noise = hits.particle_id.to_numpy() == 0
    assert (enc["cls"][noise] == 12).all() and (enc["cls"][~noise] < 12).all()
    # Straightforward reference for the class of each track hit.
    p = parts.set_index(["event_id", "particle_id"])
    key = pd.MultiIndex.from_frame(hits.loc[~noise, ["event_id", "particle_id"]])
    theta_d = p.theta_d.reindex(key).to_numpy()
    polar = np.pi / 2 - np.arctan2(p.z_d.reindex(key).to_numpy(), p.r_d.reindex(key).to_numpy())
    ref = [np.searchsorted(prep.edges["theta_d"], t, side="right") * 3
           + np.searchsorted(prep.edges["polar"], pl, side="right") for t, pl in zip(theta_d, polar)]
    assert enc["cls"][~noise].tolist() == ref
    # Targets standardised on the fitting tables, absent for noise.
    assert not enc["reg_valid"][noise].any() and enc["reg_valid"][~noise].all()
    np.testing.assert_allclose(enc["reg"][~noise].mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(enc["reg"][~noise].std(0), 1, atol=1e-4)
    np.testing.assert_allclose(enc["x"].mean(0), 0, atol=1e-5)
    # Round trip through preprocessing.json.
    again = Preprocessing.from_json(prep.to_json()).encode(hits, parts)
    assert np.array_equal(again["cls"], enc["cls"])


def test_statistics_come_from_the_fitting_tables_only():
    hits, parts = _tables(seed=0)
    other_hits, other_parts = _tables(seed=5)
    a = fit_preprocessing(hits, parts)
    b = fit_preprocessing(pd.concat([hits, other_hits.assign(event_id=other_hits.event_id + 100)]),
                          pd.concat([parts, other_parts.assign(event_id=other_parts.event_id + 100)]))
    assert a.edges != b.edges and a.input_mean != b.input_mean


def test_trackml_parameters():
    parts = pd.DataFrame({"event_id": 1, "particle_id": [5, 6], "px": [1.0, 0.0], "py": [0.0, 2.0],
                          "pz": [0.0, 2.0], "q": [1, -1], "vx": 0.0, "vy": 0.0, "vz": 0.0})
    hits = pd.DataFrame({"event_id": 1, "hit_id": [1, 2, 3], "particle_id": [5, 0, 6]})
    assert detect_kind(parts) == "trackml"
    hp = hit_parameters(hits, parts, "trackml")
    np.testing.assert_allclose(hp.theta.to_numpy()[[0, 2]], [np.pi / 2, np.pi / 4])
    np.testing.assert_allclose(hp.phi.to_numpy()[[0, 2]], [0, np.pi / 2])
    np.testing.assert_allclose(hp.p.to_numpy()[[0, 2]], [1, np.sqrt(8)])
    assert hp.iloc[1].isna().all()
    with pytest.raises(DataError, match="not in the particles table"):
        hit_parameters(hits.assign(particle_id=[5, 0, 7]), parts, "trackml")
    with pytest.raises(ConfigError, match="must name exactly"):
        fit_preprocessing(hits.assign(x=0.0, y=0.0, z=0.0), parts, bins={"phi": 3})


def test_one_bin_count_for_every_parameter():
    from trackpipe.targets import PARAMETER_SETS, fit_preprocessing

    events = list(linear_events(6, seed=2, tracks=(20, 30)))
    import pandas as pd

    hits = pd.concat([e.hits for e in events], ignore_index=True)
    particles = pd.concat([e.particles for e in events], ignore_index=True)
    prep = fit_preprocessing(hits, particles, bins=7)
    assert prep.bins_per_param == [7] * len(PARAMETER_SETS[prep.kind]["classes"])


def _helical_tables(cfg, n=20, seed=3):
    from trackpipe.sim.redvid import simulate_redvid
    events = list(simulate_redvid({"n_tracks": [5, 10], "smear_rphi": 0.0, "smear_long": 0.0, **cfg}, range(n), seed))
    return (pd.concat([e.hits for e in events], ignore_index=True),
            pd.concat([e.particles for e in events], ignore_index=True))


def test_helical_direction_classes_are_what_the_hits_show():
    """The direction set's theta0 and eta follow from the hit positions: z / r = sinh(eta), and the hit
    azimuth is theta0 + d r / a on an expanding helix from the origin (uniform helices: z / s = sinh eta)."""
    hits, parts = _helical_tables({"track_types": ["helical_expanding"]})
    assert detect_kind(parts) == "redvid-helical-direction"
    prep = fit_preprocessing(hits, parts)
    assert prep.class_params == ["theta0", "eta", "azimuthal_coeff"] and prep.n_track_classes == 30 * 20 * 2
    assert prep.regression == ["radial_coeff", "pitch_coeff", "azimuthal_coeff"]  # EncReg keeps the paper's
    params = hit_parameters(hits, parts, prep.kind)
    r = np.hypot(hits.x, hits.y).to_numpy()
    np.testing.assert_allclose(np.sinh(params.eta), hits.z / r, rtol=1e-6, atol=1e-6)
    phi = np.arctan2(hits.y, hits.x).to_numpy()
    turned = phi - params.theta0 - params.azimuthal_coeff * r / params.radial_coeff
    np.testing.assert_allclose(np.angle(np.exp(1j * turned)), 0.0, atol=1e-6)
    enc = prep.encode(hits, parts)
    # Every hit of a particle shares its class, and every one of the 30 theta0 bins is used.
    per_particle = pd.Series(enc["cls"]).groupby([hits.event_id, hits.particle_id]).nunique()
    assert (per_particle == 1).all()
    theta_bin = np.unravel_index(enc["cls"], prep.bins_per_param)[0]
    assert np.bincount(theta_bin, minlength=30).min() > 0

    # Uniform helix of radius R through the origin: after turning by t the hit sits at chord r = 2 R sin(t / 2)
    # from the origin and z = R sinh(eta) t (its eta comes from radial_const, radial_coeff being 0).
    uniform_hits, uniform_parts = _helical_tables({"track_types": ["helical"]})
    params = hit_parameters(uniform_hits, uniform_parts, "redvid-helical-direction")
    radius = uniform_hits[["event_id", "particle_id"]].merge(uniform_parts, how="left").radial_const.to_numpy()
    turn = 2 * np.arcsin(np.hypot(uniform_hits.x, uniform_hits.y).to_numpy() / (2 * radius))
    np.testing.assert_allclose(uniform_hits.z, radius * np.sinh(params.eta) * turn, rtol=1e-6, atol=1e-6)


def test_helical_files_with_one_start_azimuth_keep_the_paper_classes():
    """The published REDVID files start every helix at azimuthal_const = 0: there the paper's
    coefficients tell tracks apart, and auto keeps them."""
    hits, parts = _helical_tables({"track_types": ["helical_expanding"]})
    parts = parts.assign(azimuthal_const=0.0)
    assert detect_kind(parts) == "redvid-helical"
    assert fit_preprocessing(hits, parts).class_params == ["radial_coeff", "pitch_coeff", "azimuthal_coeff"]
    assert fit_preprocessing(hits, parts, kind="redvid-helical-direction").n_track_classes == 1 * 20 * 2
    flat = parts.assign(radial_coeff=0.0, radial_const=0.0)
    with pytest.raises(DataError, match="radial_coeff = radial_const = 0"):
        hit_parameters(hits, flat, "redvid-helical-direction")
