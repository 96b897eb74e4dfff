"""Augmentation by the detectors' symmetries: hits and labels move together, the identity is the identity,
and an augmented run still resumes exactly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from train_helpers import TINY, assert_same_weights, weights

from trackpipe.errors import ConfigError
from trackpipe.io.store import write_store
from trackpipe.sim.redvid import simulate_redvid
from trackpipe.sim.trackml_like import simulate_trackml
from trackpipe.targets import fit_preprocessing, hit_parameters
from trackpipe.train.augment import RAW_PARAMS, RAW_XYZ, Augmentation, augment_settings, parameter_columns
from trackpipe.train.data import EventArrays, collate
from trackpipe.train.loop import train

BOTH = {"phi_rotation": True, "z_reflection": True}


def _arrays(events):
    hits = pd.concat([e.hits for e in events], ignore_index=True)
    particles = pd.concat([e.particles for e in events], ignore_index=True)
    prep = fit_preprocessing(hits, particles, inputs=["x", "y", "z", "r", "phi", "eta"])
    data = EventArrays.from_tables(hits, particles, prep, raw=True)
    return data, prep, Augmentation(prep, BOTH, data.fields[RAW_PARAMS])


def _wrap(a):
    return np.angle(np.exp(1j * a))


@pytest.fixture(scope="module")
def trackml_event():
    return next(simulate_trackml({"volumes": [7, 8, 9], "generator": {"mu": 5}}, [0], 11))


def test_trackml_labels_follow_the_rotated_and_mirrored_momenta(trackml_event):
    """The transformed parameters equal those computed from the rotated / mirrored particle momenta."""
    data, prep, aug = _arrays([trackml_event])
    ev = data.event(0)
    alpha = 2.3
    for flip in (False, True):
        xyz, params = aug.transform(ev[RAW_XYZ], ev[RAW_PARAMS], alpha, flip)
        p = trackml_event.particles.copy()
        c, s = np.cos(alpha), np.sin(alpha)
        p["px"], p["py"] = c * p.px - s * p.py, s * p.px + c * p.py
        if flip:
            p["pz"] = -p.pz
        hits = trackml_event.hits
        expected = hit_parameters(hits, p, "trackml")[parameter_columns("trackml")].to_numpy()
        np.testing.assert_allclose(params, expected, atol=1e-6, equal_nan=True)  # float32 momenta
        # the hits moved the same way: a hit's azimuth relative to its particle's is unchanged
        track = hits.particle_id.to_numpy() != 0
        phi_col = parameter_columns("trackml").index("phi")
        before = _wrap(np.arctan2(ev[RAW_XYZ][:, 1], ev[RAW_XYZ][:, 0]) - ev[RAW_PARAMS][:, phi_col])
        after = _wrap(np.arctan2(xyz[:, 1], xyz[:, 0]) - params[:, phi_col])
        np.testing.assert_allclose(after[track], before[track], atol=1e-9)
        np.testing.assert_allclose(xyz[:, 2], -ev[RAW_XYZ][:, 2] if flip else ev[RAW_XYZ][:, 2])


def test_identity_transform_reproduces_the_encoding(trackml_event):
    data, prep, aug = _arrays([trackml_event])
    ev = data.event(0)
    xyz, params = aug.transform(ev[RAW_XYZ], ev[RAW_PARAMS], 0.0, False)
    frame = pd.DataFrame(params, columns=aug.columns)
    np.testing.assert_array_equal(prep.classes(frame), ev["cls"])
    np.testing.assert_allclose(prep.inputs(pd.DataFrame(xyz, columns=["x", "y", "z"])), ev["x"], atol=1e-6)


def test_augmented_batches_differ_but_keep_each_particle_in_one_class(trackml_event):
    data, prep, aug = _arrays([trackml_event])
    data.augment = aug
    plain = collate(data, [0])
    moved = collate(data, [0], rng=np.random.default_rng(5))
    assert "raw_xyz" not in moved and not np.allclose(plain["x"].numpy(), moved["x"].numpy())
    assert (moved["cls"] != plain["cls"]).any()  # rotated azimuths land in other phi bins
    pid = data.event(0)["particle_id"]
    cls = moved["cls"][0].numpy()
    for p in np.unique(pid[pid != 0])[:50]:
        assert len(np.unique(cls[pid == p])) == 1
    assert (cls[pid == 0] == prep.noise_class).all()
    # the same generator seed gives the same batch (exact resume)
    again = collate(data, [0], rng=np.random.default_rng(5))
    assert np.array_equal(again["x"].numpy(), moved["x"].numpy())


def test_redvid_transforms():
    """REDVID linear: theta_d rotates (kept in [0, 2 pi)), polar -> pi - polar; helical: pitch flips sign."""
    lin = list(simulate_redvid({"track_types": ["linear"], "n_tracks": [3, 5]}, range(2), 1))
    data, prep, aug = _arrays(lin)
    ev = data.event(0)
    cols = aug.columns
    _, params = aug.transform(ev[RAW_XYZ], ev[RAW_PARAMS], 4.0, True)
    track = np.isfinite(ev[RAW_PARAMS][:, 0])
    theta_d = params[track, cols.index("theta_d")]
    assert (theta_d >= 0).all() and (theta_d < 2 * np.pi).all()
    np.testing.assert_allclose(_wrap(theta_d - ev[RAW_PARAMS][track, cols.index("theta_d")]), _wrap(4.0))
    np.testing.assert_allclose(params[track, cols.index("polar")], np.pi - ev[RAW_PARAMS][track, cols.index("polar")])
    np.testing.assert_allclose(params[track, cols.index("sin_theta_d")], np.sin(theta_d))

    hel = list(simulate_redvid({"track_types": ["helical_expanding"], "n_tracks": [3, 5]}, range(2), 1))
    data, prep, aug = _arrays(hel)
    ev = data.event(0)
    _, params = aug.transform(ev[RAW_XYZ], ev[RAW_PARAMS], 1.0, True)
    cols = aug.columns
    track = np.isfinite(ev[RAW_PARAMS][:, 0])
    np.testing.assert_allclose(params[track, cols.index("pitch_coeff")], -ev[RAW_PARAMS][track, cols.index("pitch_coeff")])
    np.testing.assert_allclose(params[track, cols.index("radial_coeff")], ev[RAW_PARAMS][track, cols.index("radial_coeff")])
    # Direction classes (the set auto picks for simulated helices): theta0 turns with the event, eta flips.
    assert prep.kind == "redvid-helical-direction"
    theta0 = params[track, cols.index("theta0")]
    assert (theta0 >= 0).all() and (theta0 < 2 * np.pi).all()
    np.testing.assert_allclose(_wrap(theta0 - ev[RAW_PARAMS][track, cols.index("theta0")]), _wrap(1.0))
    np.testing.assert_allclose(params[track, cols.index("eta")], -ev[RAW_PARAMS][track, cols.index("eta")])


def test_settings_are_checked():
    assert augment_settings({"augment": {"phi_rotation": False, "z_reflection": False}}) is None
    with pytest.raises(ConfigError, match="unknown training.augment keys"):
        augment_settings({"augment": {"phi_rotations": True}})


def test_augmented_training_resumes_exactly(tmp_path):
    store = write_store(tmp_path / "s", simulate_redvid({"track_types": ["linear"], "n_tracks": [3, 6]}, range(14), 2))
    cfg = {**TINY, "training": {**TINY["training"], "augment": BOTH}}
    straight = train("enccla", store, tmp_path / "straight", config=cfg, epochs=2, seed=4)
    assert straight.status == "completed"
    first = train("enccla", store, tmp_path / "resumed", config=cfg, epochs=2, seed=4,
                  stop=lambda epoch, step: epoch == 1 and step == 1)
    assert first.status == "stopped"
    train("enccla", store, tmp_path / "resumed", config=cfg, epochs=2, seed=4)
    assert_same_weights(weights(tmp_path / "straight"), weights(tmp_path / "resumed"))
    # and augmentation changed what was learned
    off = {"phi_rotation": False, "z_reflection": False}
    plain = train("enccla", store, tmp_path / "plain", epochs=2, seed=4,
                  config={**TINY, "training": {**TINY["training"], "augment": off}})
    assert plain.status == "completed"
    assert any(not np.array_equal(a, b) for a, b in zip(weights(tmp_path / "plain").values(),
                                                        weights(tmp_path / "straight").values()))


def test_transformed_copy_moves_hits_momenta_and_vertices_together(trackml_event):
    from trackpipe.train.augment import transformed_copy

    hits, parts = trackml_event.hits, trackml_event.particles
    h, p = transformed_copy(hits, parts, BOTH, np.random.default_rng(3))
    np.testing.assert_allclose(np.hypot(p.px, p.py), np.hypot(parts.px, parts.py), rtol=1e-6)  # pT invariant
    assert np.array_equal(h.particle_id, hits.particle_id) and np.array_equal(h.hit_id, hits.hit_id)
    # one rotation for the whole event: every hit and momentum turned by the same angle
    turn_hits = _wrap(np.arctan2(h.y, h.x) - np.arctan2(hits.y, hits.x))
    turn_p = _wrap(np.arctan2(p.py, p.px) - np.arctan2(parts.py, parts.px))
    assert np.ptp(turn_hits) < 1e-6 and abs(_wrap(turn_p - turn_hits[0])).max() < 1e-5
    flipped = np.allclose(h.z, -hits.z)
    assert flipped or np.allclose(h.z, hits.z)
    np.testing.assert_allclose(p.pz, -parts.pz if flipped else parts.pz, rtol=1e-6)


def test_concat_keeps_every_event(trackml_event):
    data, prep, _ = _arrays([trackml_event])
    both = EventArrays.concat([data, data])
    assert len(both) == 2 and both.offsets[-1] == 2 * data.offsets[-1]
    for k, v in data.event(0).items():
        np.testing.assert_array_equal(both.event(1)[k], v)


def test_locality_models_train_on_transformed_copies(tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contrastive"))
    from contrastive_helpers import TINY_CONTRASTIVE, tiny_events

    store = write_store(tmp_path / "s", tiny_events(4, seed=1))
    cfg = {**TINY_CONTRASTIVE, "training": {**TINY_CONTRASTIVE["training"],
                                            "augment": {**BOTH, "copies": 2}}}
    res = train("contrastive", store, tmp_path / "m", config=cfg, epochs=1, seed=0)
    assert res.status == "completed"
    cache = tmp_path / "m" / "locality-cache"
    assert (cache / "copy-1").is_dir() and (cache / "copy-2").is_dir()
    log = (tmp_path / "m" / "train.log").read_text()
    assert "augmentation: phi_rotation True, z_reflection True, copies 2" in log
    # copies 0: no transformed copies and no per-batch transformation (the clusters would not follow), said in the log
    train("contrastive", store, tmp_path / "n", epochs=1, seed=0,
          config={**TINY_CONTRASTIVE, "training": {**TINY_CONTRASTIVE["training"], "augment": {**BOTH, "copies": 0}}})
    assert "augmentation: off; contrastive's locality clusters" in (tmp_path / "n" / "train.log").read_text()
    assert not (tmp_path / "n" / "locality-cache" / "copy-1").exists()
