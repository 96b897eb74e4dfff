"""Reduced-TrackML CSV (TrackFormers EncReg format) ingest; fixture built from the real TrackML event
(tests/data/trackml_reduced/PROVENANCE.md)."""

import filecmp
import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trackpipe.cli import main
from trackpipe.errors import DataError
from trackpipe.io.store import EventStore
from trackpipe.io.trackml_reduced import COLUMNS, TrackMLReducedSource, detect_header

DATA = Path(__file__).resolve().parents[1] / "data" / "trackml_reduced"
NO_HEADER = DATA / "trackml_10to50_2events.csv"


def _raw():
    """The fixture read independently: plain pandas, particle ids as Python ints."""
    df = pd.read_csv(NO_HEADER, header=None, names=COLUMNS, dtype={"particle_id": str})
    df["particle_id"] = [int(v) for v in df.particle_id]
    return df


@pytest.fixture
def with_header(tmp_path):
    path = tmp_path / "with_header.csv"
    pd.read_csv(NO_HEADER, header=None, names=COLUMNS, dtype={"particle_id": str}).to_csv(path, index=False)
    assert path.read_text().splitlines()[0] == ",".join(COLUMNS)
    return path


def test_events_hits_particles_noise_and_weights():
    raw = _raw()
    src = TrackMLReducedSource(NO_HEADER)
    assert not src.has_header and src.event_ids == [0, 1]
    for eid in src.event_ids:
        rows = raw[raw.event_id == eid].reset_index(drop=True)
        ev = src.read_event(eid)
        h, p = ev.hits, ev.particles
        assert list(h.hit_id) == list(range(1, len(rows) + 1))  # file order
        np.testing.assert_array_equal(h.x, rows.x.astype(np.float32))
        np.testing.assert_array_equal(h.volume_id, rows.volume_id)
        assert list(h.particle_id) == list(rows.particle_id)  # exact int64, beyond float64's 2**53
        assert h.particle_id.max() > 2**53
        np.testing.assert_array_equal(h.weight, rows.weight.astype(np.float32))
        noise = rows.particle_id == 0
        assert noise.sum() > 10 and (h.particle_id == 0).sum() == noise.sum() and (h.weight[noise] == 0).all()
        tracks = rows[~noise].groupby("particle_id")
        assert 10 <= len(p) <= 50 and sorted(p.particle_id) == sorted(tracks.groups)
        np.testing.assert_array_equal(p.set_index("particle_id").nhits.sort_index(), tracks.size().sort_index())
        first = tracks.first().loc[p.particle_id]
        np.testing.assert_array_equal(p.pz, first.pz.astype(np.float32))
        np.testing.assert_array_equal(p.q, first.q.astype(int))
        # A reduced event keeps the full event's weights: they sum to far less than 1 (REFERENCE 2.3).
        assert 0 < h.weight.sum() < 0.05


def test_header_and_no_header_give_the_same_store(tmp_path, with_header):
    assert detect_header(with_header) and not detect_header(NO_HEADER)
    for name, path in (("a", NO_HEADER), ("b", with_header)):
        assert main(["ingest", "--format", "trackml-reduced", str(path), "--out", str(tmp_path / name)]) == 0
    a, b = EventStore(tmp_path / "a"), EventStore(tmp_path / "b")
    assert list(a.event_ids) == list(b.event_ids) == [0, 1]
    for eid in a.event_ids:
        pd.testing.assert_frame_equal(a.read_event(eid).hits, b.read_event(eid).hits)
        pd.testing.assert_frame_equal(a.read_event(eid).particles, b.read_event(eid).particles)


def test_matches_the_original_trackml_event(trackml_event):
    """Every hit and particle of the reduced events is the original event's (positions, momenta, weights)."""
    orig_h, orig_p = trackml_event.hits, trackml_event.particles
    src = TrackMLReducedSource(NO_HEADER)
    for eid in src.event_ids:
        ev = src.read_event(eid)
        key = ["x", "y", "z", "particle_id"]
        joined = ev.hits.merge(orig_h[key + ["weight"]], on=key, how="left", suffixes=("", "_orig"))
        assert joined.weight_orig.notna().all()
        np.testing.assert_allclose(joined.weight, joined.weight_orig, rtol=1e-6)
        p = ev.particles.merge(orig_p, on="particle_id", suffixes=("", "_orig"))
        assert len(p) == len(ev.particles)
        for c in ("vx", "vy", "vz", "px", "py", "pz", "q"):
            np.testing.assert_allclose(p[c], p[c + "_orig"], rtol=1e-6)


def test_fixture_rebuilds_from_the_real_event(tmp_path, trackml_dir):
    spec = importlib.util.spec_from_file_location("make_reduced", DATA / "make_reduced.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["make_reduced.py", str(trackml_dir), str(tmp_path / "rebuilt.csv")])
    assert filecmp.cmp(tmp_path / "rebuilt.csv", NO_HEADER, shallow=False)


def _lines():
    return NO_HEADER.read_text().splitlines()


def _write(tmp_path, lines, name="bad.csv"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_bad_header_names_expected_and_found(tmp_path):
    header = ",".join(COLUMNS).replace("weight,", "weight_x,")  # TrackFormers' merged frame calls it weight_x
    path = _write(tmp_path, [header] + _lines())
    with pytest.raises(DataError) as e:
        TrackMLReducedSource(path)
    msg = str(e.value)
    assert str(path) in msg and "missing ['weight']" in msg and "unexpected ['weight_x']" in msg
    assert e.value.column == "weight, weight_x"
    other = _write(tmp_path, ["a,b,c"] + _lines(), "other.csv")
    with pytest.raises(DataError, match=r"header columns \['a', 'b', 'c'\]"):
        TrackMLReducedSource(other)


def test_first_data_row_is_never_reported_as_a_header(tmp_path):
    lines = _lines()
    fields = lines[0].split(",")
    fields[1] = "abc"
    path = _write(tmp_path, [",".join(fields)] + lines[1:])
    with pytest.raises(DataError) as e:
        TrackMLReducedSource(path)
    assert "header columns" not in str(e.value) and e.value.column == "y"


def test_wrong_column_counts(tmp_path):
    lines = _lines()
    first_short = _write(tmp_path, [lines[0].rsplit(",", 1)[0]] + lines[1:], "first.csv")
    with pytest.raises(DataError, match="the first row has 13 fields"):
        TrackMLReducedSource(first_short)
    later_long = _write(tmp_path, lines[:5] + [lines[5] + ",7"] + lines[6:], "long.csv")
    with pytest.raises(DataError, match="Expected 14 fields in line 6, saw 15"):
        TrackMLReducedSource(later_long)
    later_short = _write(tmp_path, lines[:5] + [lines[5].rsplit(",", 1)[0]] + lines[6:], "short.csv")
    with pytest.raises(DataError, match="first on line 6") as e:
        TrackMLReducedSource(later_short)
    assert e.value.column == "event_id"


def _edit(tmp_path, line_no, column, value, name):
    lines = _lines()
    fields = lines[line_no].split(",")
    fields[COLUMNS.index(column)] = value
    lines[line_no] = ",".join(fields)
    return _write(tmp_path, lines, name)


def test_nan_inconsistent_and_weight_errors_name_event_and_column(tmp_path):
    raw = _raw()
    track_row = int(np.flatnonzero(raw.particle_id.to_numpy() != 0)[0])
    noise_row = int(np.flatnonzero(raw.particle_id.to_numpy() == 0)[0])
    event = int(raw.event_id[track_row])
    cases = [
        (track_row, "x", "", "x", "NaN"),
        (track_row, "px", "nan", "px", "NaN"),
        (track_row, "pz", "123.0", "pz", "disagree"),
        (track_row, "q", "0.5", "q", "disagree"),
        (noise_row, "weight", "0.1", "weight", "noise hits"),
        (track_row, "weight", "-1e-6", "weight", "negative"),
        (track_row, "weight", "2.0", "weight", "sum to"),
        (track_row, "particle_id", "4.5e17", "particle_id", "too large"),
    ]
    for k, (row, column, value, named, what) in enumerate(cases):
        path = _edit(tmp_path, row, column, value, f"case{k}.csv")
        src = TrackMLReducedSource(path)
        with pytest.raises(DataError, match=what) as e:
            src.read_event(int(raw.event_id[row]))
        assert e.value.column == named and str(path) in str(e.value)
        assert e.value.event == (event if row == track_row else int(raw.event_id[noise_row]))
    # Noise rows carry no particle: their empty particle columns are not an error.
    assert raw.loc[raw.particle_id == 0, "px"].isna().all()


def test_strip_hits_without_tz_are_scored_without_a_pixel_score(tmp_path):
    """The format has no simulated positions (tz), which the pixel-restricted weights need: the full
    score is computed, the pixel score is left out rather than guessed."""
    from trackpipe.evaluate import evaluate_submission
    from trackpipe.io.ingest import ingest

    ingest("trackml-reduced", NO_HEADER, tmp_path / "store")
    hits = EventStore(tmp_path / "store").hits(columns=["event_id", "hit_id", "particle_id", "volume_id"])
    assert "tz" not in EventStore(tmp_path / "store").hits().columns
    assert not hits.volume_id.isin([7, 8, 9]).all()  # strip hits present
    perfect = hits.assign(track_id=hits.particle_id)[["event_id", "hit_id", "track_id"]]
    metrics = evaluate_submission(tmp_path / "store", perfect).metrics
    assert metrics["trackml_score"] == pytest.approx(1.0) and metrics["trackml_score_pixel"] is None
