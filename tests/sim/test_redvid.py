import hashlib

import numpy as np
import pandas as pd
import pytest

from trackpipe.errors import ConfigError
from trackpipe.io.redvid import REDVIDSource, SUB_DETECTOR_CODES, write_redvid_csv
from trackpipe.io.store import EventStore, write_store
from trackpipe.sim.redvid import DEFAULT_DETECTOR, build_detector, simulate_redvid

EXACT = {"smear_rphi": 0.0, "smear_long": 0.0, "batch_events": 32}


def _events(cfg=None, n=40, seed=3):
    return list(simulate_redvid({**EXACT, **(cfg or {})}, range(n), seed))


def _all(events):
    return (pd.concat([e.hits for e in events], ignore_index=True),
            pd.concat([e.particles for e in events], ignore_index=True))


@pytest.mark.parametrize("types", [["linear"], ["helical"], ["helical_expanding"]])
def test_counts_ids_and_weights(types):
    events = _events({"track_types": types, "n_tracks": [10, 50], "noise_fraction": 0.1})
    assert [e.event_id for e in events] == list(range(40))
    for e in events:
        n = len(e.particles)
        assert 10 <= n <= 50
        assert e.particles.particle_id.tolist() == list(range(1, n + 1))
        assert sorted(e.hits.hit_id) == list(range(1, len(e.hits) + 1))
        real = e.hits.particle_id > 0
        assert (e.hits.weight[real] == 1).all() and (e.hits.weight[~real] == 0).all()
        counts = e.hits.particle_id[real].value_counts().reindex(e.particles.particle_id).to_numpy()
        np.testing.assert_array_equal(counts, e.particles.nhits)
        assert set(e.particles.track_type) == set(types)
    hits, parts = _all(events)
    assert 4 <= parts.nhits.min() and parts.nhits.max() <= 9  # REDVID: at most 9 hits per track
    noise = (hits.particle_id == 0).sum() / (hits.particle_id > 0).sum()
    assert 0.07 < noise < 0.13
    # Hit ids carry no track information: ids of one track are not consecutive.
    first = events[0].hits[events[0].hits.particle_id == 1].hit_id.sort_values().to_numpy()
    assert np.any(np.diff(first) > 1)


def test_hits_sit_on_their_elements():
    det = build_detector(None)
    hits, _ = _all(_events({"noise_fraction": 0.2}))
    k = hits.layer_id.to_numpy() - 1
    rho = np.hypot(hits.x, hits.y).to_numpy(np.float64)
    z = hits.z.to_numpy(np.float64)
    cyl = det.kind[k] == 0
    np.testing.assert_allclose(rho[cyl], det.pos[k][cyl], atol=1e-3)
    np.testing.assert_allclose(z[~cyl], det.pos[k][~cyl], atol=1e-4)
    assert (np.abs(z[cyl]) <= det.hi[k][cyl] + 1e-3).all()
    assert ((rho[~cyl] >= det.lo[k][~cyl] - 1e-3) & (rho[~cyl] <= det.hi[k][~cyl] + 1e-3)).all()
    codes = {SUB_DETECTOR_CODES[n] for n in ("barrel", "short_strip", "long_strip")}
    assert set(hits.volume_id.unique()) == codes
    # Radii of the default barrel layers, read back from the hits.
    barrel = hits[hits.volume_id == SUB_DETECTOR_CODES["barrel"]]
    radii = np.unique(np.round(np.hypot(barrel.x, barrel.y)))
    np.testing.assert_allclose(radii, DEFAULT_DETECTOR["barrel"]["radii"])


def test_hits_follow_the_redvid_equations():
    """Recompute each hit from the stored parameters: r = r0 + a t, theta = theta0 + d t, z = z0 + b t."""
    for types in (["helical_expanding"], ["helical"], ["linear"]):
        hits, parts = _all(_events({"track_types": types}, n=10))
        h = hits.merge(parts, on=["event_id", "particle_id"])
        x, y, z = (h[c].to_numpy(np.float64) for c in ("x", "y", "z"))
        if types == ["linear"]:
            t = z / h.z_d.to_numpy()
            ex = h.r_d * t * np.cos(h.theta_d)
            ey = h.r_d * t * np.sin(h.theta_d)
        else:
            r0, th0, a, d, b = (h[c].to_numpy() for c in ("radial_const", "azimuthal_const", "radial_coeff",
                                                         "azimuthal_coeff", "pitch_coeff"))
            t = z / b
            cx, cy = -r0 * np.cos(th0), -r0 * np.sin(th0)
            ex = cx + (r0 + a * t) * np.cos(th0 + d * t)
            ey = cy + (r0 + a * t) * np.sin(th0 + d * t)
            if types == ["helical"]:
                assert (a == 0).all() and (r0 >= 300).all()
            else:
                assert (r0 == 0).all() and (a > 0).all()
            assert set(np.unique(d)) == {-1.0, 1.0}
        np.testing.assert_allclose(ex, x, atol=2e-2)
        np.testing.assert_allclose(ey, y, atol=2e-2)


def test_helical_types_turn_but_do_not_loop():
    hits, parts = _all(_events({"track_types": ["helical_expanding"]}, n=20))
    h = hits.merge(parts, on=["event_id", "particle_id"])
    t = h.z / h.pitch_coeff  # turning angle = |d| t
    turn = h.assign(t=np.abs(t)).groupby(["event_id", "particle_id"]).t.max()
    assert turn.max() < 2.0
    # Tracks leaving through the last barrel shell (r = 450 mm) turned by 450 / a >= 0.225 rad.
    central = h[np.isclose(np.hypot(h.x, h.y), 450.0, atol=0.01)]
    assert (np.abs(central.z / central.pitch_coeff) > 0.22).all() and len(central) > 100


def test_reconstructable_every_track_reaches_the_last_layer():
    det = build_detector(None)
    hits, parts = _all(_events({"track_types": ["helical"]}))
    outer_layers = det.layer_id[det.outer]
    reached = hits[hits.layer_id.isin(outer_layers)].groupby(["event_id", "particle_id"]).size()
    assert len(reached) == len(parts)


def test_same_seed_byte_identical_store(tmp_path):
    def digest(path):
        return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(path.iterdir())}

    a = write_store(tmp_path / "a", simulate_redvid({"noise_fraction": 0.05}, range(50), 11))
    b = write_store(tmp_path / "b", simulate_redvid({"noise_fraction": 0.05}, range(50), 11))
    c = write_store(tmp_path / "c", simulate_redvid({"noise_fraction": 0.05}, range(50), 12))
    assert digest(a) == digest(b)
    assert digest(a)["hits.parquet"] != digest(c)["hits.parquet"]


def test_events_do_not_depend_on_sharding():
    full = {e.event_id: e for e in simulate_redvid({"batch_events": 16}, range(64), 5)}
    for e in simulate_redvid({"batch_events": 16}, range(20, 37), 5):
        pd.testing.assert_frame_equal(e.hits, full[e.event_id].hits)
        pd.testing.assert_frame_equal(e.particles, full[e.event_id].particles)


def test_vertex_smearing_moves_tracks_off_the_origin():
    _, parts = _all(_events({"vertex_sigma": [0.5, 0.5, 20.0]}))
    assert 10 < parts.vz.std() < 30 and parts.vx.std() > 0.2


def test_redvid_csv_round_trip(tmp_path):
    for types in (["linear"], ["helical_expanding"]):
        events = _events({"track_types": types, "noise_fraction": 0.1}, n=5)
        path = write_redvid_csv(tmp_path / f"{types[0]}.csv", events)
        src = REDVIDSource(path)
        assert src.event_ids == list(range(5))
        for e in events:
            back = src.read_event(e.event_id)
            h = e.hits.drop(columns="event_id")
            hb = back.hits.drop(columns="event_id")[h.columns]
            pd.testing.assert_frame_equal(hb, h, check_dtype=False, atol=1e-3)
            params = [c for c in e.particles.columns if c.endswith(("_const", "_coeff")) or c[-2:] in ("_0", "_d")]
            np.testing.assert_allclose(back.particles[params].to_numpy(), e.particles[params].to_numpy())


def test_bad_config_is_rejected():
    with pytest.raises(ConfigError, match="linear"):
        _events({"track_types": ["linear", "helical"]})
    with pytest.raises(ConfigError, match="unknown key"):
        _events({"n_trakcs": [1, 2]})
    with pytest.raises(ConfigError, match="unknown"):
        _events({"track_types": ["spiral"]})
    with pytest.raises(ConfigError, match="reconstructable"):
        _events({"eta": [6.0, 7.0]})
