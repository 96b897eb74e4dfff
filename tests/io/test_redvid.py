import numpy as np
import pandas as pd
import pytest

from trackpipe.cli import main
from trackpipe.io.redvid import HELICAL_PARAMS, LINEAR_PARAMS, REDVIDSource, write_redvid_csv
from trackpipe.io.store import EventStore


def _helical_rows(event_id, n_tracks, rng):
    rows = []
    for t in range(n_tracks):
        a, d, b = rng.uniform(0.1, 0.9), rng.choice([-1.0, 1.0]), rng.uniform(-2.5, 1.5)
        for layer, tt in enumerate(np.linspace(20, 100, 5)):
            rows.append([event_id, layer + 1, "short_strip" if layer < 3 else "long_strip", t, "helical_expanding",
                         0.0, 0.0, 0.0, a, d, b, len(rows), a * tt, d * tt / 100.0, b * tt])
    return rows


def _write(path, rows, params):
    cols = ["event_id", "sub_detector_id", "sub_detector_type", "track_id", "track_type", *params,
            "hit_id", "hit_r", "hit_theta", "hit_z"]
    pd.DataFrame(rows, columns=cols).to_csv(path, sep=";", index=False)


def test_helical_file_to_store_and_back(tmp_path):
    rng = np.random.default_rng(1)
    rows = _helical_rows(0, 3, rng) + _helical_rows(7, 4, rng)
    src = tmp_path / "hits_and_tracks_3d_events_all.csv"
    _write(src, rows, HELICAL_PARAMS)
    assert main(["ingest", "--format", "redvid", str(src), "--out", str(tmp_path / "s")]) == 0
    store = EventStore(tmp_path / "s")
    assert list(store.event_ids) == [0, 7]
    ev = store.read_event(7)
    assert len(ev.hits) == 20 and len(ev.particles) == 4
    assert ev.hits.particle_id.min() == 1  # track id 0 -> particle 1 (0 means noise in the store)
    assert (ev.hits.weight == 1).all() and (ev.particles.nhits == 5).all()
    assert set(ev.hits.volume_id) == {3, 4}
    original = pd.read_csv(src, sep=";")
    row = original[(original.event_id == 7)].iloc[6]
    hit = ev.hits.set_index("hit_id").loc[row.hit_id]
    assert hit.x == pytest.approx(row.hit_r * np.cos(row.hit_theta), rel=1e-6)
    assert hit.y == pytest.approx(row.hit_r * np.sin(row.hit_theta), rel=1e-6, abs=1e-6)
    p = ev.particles.set_index("particle_id").loc[row.track_id + 1]
    assert p.radial_coeff == row.radial_coeff and p.track_type == "helical_expanding"

    back = tmp_path / "back.csv"
    write_redvid_csv(back, store.iter_events())
    again = pd.read_csv(back, sep=";")
    a = original.sort_values(["event_id", "hit_id"]).reset_index(drop=True)
    b = again.sort_values(["event_id", "hit_id"]).reset_index(drop=True)
    assert list(b.columns) == list(a.columns)
    for c in ["event_id", "sub_detector_id", "sub_detector_type", "track_id", "track_type", *HELICAL_PARAMS, "hit_id"]:
        assert (a[c] == b[c]).all(), c
    for c in ("hit_r", "hit_theta", "hit_z"):  # stored as float32 positions
        np.testing.assert_allclose(b[c], a[c], rtol=2e-6, atol=2e-6)


def test_linear_file_detected(tmp_path):
    rows = [[1, 1, "barrel", 0, "linear", 0, 0, 0, 1.0, 0.5, 0.2, 0, 10.0, 0.5, 2.0],
            [1, 2, "barrel", 0, "linear", 0, 0, 0, 1.0, 0.5, 0.2, 1, 20.0, 0.5, 4.0],
            [1, 3, "barrel", 0, "linear", 0, 0, 0, 1.0, 0.5, 0.2, 2, 30.0, 0.5, 6.0]]
    src = tmp_path / "lin.csv"
    _write(src, rows, LINEAR_PARAMS)
    ev = REDVIDSource(src).read_event(1)
    assert set(LINEAR_PARAMS) <= set(ev.particles.columns)
    assert ev.particles.theta_d.iloc[0] == 0.5


@pytest.mark.parametrize("edit,column,reason", [
    (lambda df: df.drop(columns=["pitch_coeff", "z_d"], errors="ignore"), "pitch_coeff", "neither"),
    (lambda df: df.assign(sub_detector_type=["cube"] + list(df.sub_detector_type[1:])), "sub_detector_type", "unknown"),
    (lambda df: df.assign(hit_z=[np.nan] + list(df.hit_z[1:])), "hit_z", "NaN"),
    (lambda df: df.assign(hit_id=[1, 1] + list(df.hit_id[2:])), "hit_id",
     "duplicated"),
    (lambda df: df.assign(radial_coeff=[5.0] + list(df.radial_coeff[1:])), "radial_coeff", "differ"),
])
def test_bad_redvid_input(tmp_path, capsys, edit, column, reason):
    rows = _helical_rows(3, 2, np.random.default_rng(0))
    src = tmp_path / "bad.csv"
    _write(src, rows, HELICAL_PARAMS)
    edit(pd.read_csv(src, sep=";")).to_csv(src, sep=";", index=False)
    assert main(["ingest", "--format", "redvid", str(src), "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "bad.csv" in err and repr(column) in err and reason in err, err
    assert not (tmp_path / "s").exists()
