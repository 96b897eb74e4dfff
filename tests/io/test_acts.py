"""ACTS CSV reader on small hand-built events: the mapping rules and every bad-input error.

Real public ACTS outputs are tested in test_acts_real.py.
"""

import logging

import numpy as np
import pandas as pd
import pytest

from trackpipe.cli import main
from trackpipe.errors import DataError
from trackpipe.io.acts import ACTSSource, decode_geometry_id, pack_trackml_id, unpack_trackml_id
from trackpipe.io.store import EventStore

EV = "event000000004"


def barcode(pv, sv, part, gen, sub):
    return (pv << 52) | (sv << 40) | (part << 24) | (gen << 16) | sub


def geometry(volume, layer, sensitive):
    return (volume << 56) | (layer << 36) | (sensitive << 8)


def packed(pv, sv, part, gen, sub):
    return int(pack_trackml_id({k: np.array([v]) for k, v in zip(("pv", "sv", "part", "gen", "subpart"),
                                                                  (pv, sv, part, gen, sub))})[0])


# Two particles: a primary of vertex 1 (4 sim hits) and a secondary of vertex 1 (gen 1, 2 sim hits).
PARTICLES = [(1, 0, 5, 0, 0, 211, 0.0, 0.0, 1.0, 2.0, 0.5, 3.0, 1.0),
             (1, 2, 5, 1, 3, -11, 10.0, 5.0, 20.0, 0.1, 0.2, 0.05, -1.0)]
SIM_Z = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0]
# m0..m3 -> sim hits 0..3; m4 merges sim hits 4, 5 and 0 (majority: particle 2); m5 has no sim hit (noise).
MAP = {"measurement_id": [0, 1, 2, 3, 4, 4, 4], "hit_id": [0, 1, 2, 3, 4, 5, 0]}


def _ids(pi, split):
    pv, sv, part, gen, sub = PARTICLES[pi][:5]
    if split:
        return {"particle_id_pv": pv, "particle_id_sv": sv, "particle_id_part": part, "particle_id_gen": gen,
                "particle_id_subpart": sub}
    return {"particle_id": barcode(pv, sv, part, gen, sub)}


def _write_event(d, split=False, globals_="finite", stem="particles", with_map=True):
    prow = [{**_ids(i, split), "particle_type": p[5], "process": 0, "vx": p[6], "vy": p[7], "vz": p[8], "vt": 0.0,
             "px": p[9], "py": p[10], "pz": p[11], "m": 0.14, "q": p[12]} for i, p in enumerate(PARTICLES)]
    pd.DataFrame(prow).to_csv(d / f"{EV}-{stem}.csv", index=False)
    hrows = [{**_ids(pi, split), "geometry_id": geometry(8, 2 * (k % 4 + 1), 100 + k), "tx": 1.0 * k, "ty": 2.0,
              "tz": z, "tt": 0.0, "tpx": 1.0, "tpy": 0.0, "tpz": 0.5, "te": 1.0, "deltapx": 0, "deltapy": 0,
              "deltapz": 0, "deltae": 0, "index": k}
             for k, (pi, z) in enumerate(zip([0, 0, 0, 0, 1, 1], SIM_Z))]
    pd.DataFrame(hrows).to_csv(d / f"{EV}-hits.csv", index=False)
    meas = pd.DataFrame({"measurement_id": range(6), "geometry_id": [geometry(8, 2, 100 + k) for k in range(6)],
                         "local_key": 0, "local0": 0.0, "local1": 0.0, "phi": 0.0, "theta": 0.0, "time": 0.0,
                         "var_local0": 0.0, "var_local1": 0.0, "var_phi": 0.0, "var_theta": 0.0, "var_time": 0.0})
    if globals_ != "absent":
        meas["global_x"] = [0.1 * k for k in range(6)]
        meas["global_y"] = 1.0
        meas["global_z"] = [5.0 * k for k in range(6)]
        if globals_ == "nan":
            meas.loc[[1, 4], ["global_x", "global_y", "global_z"]] = np.nan
    meas.to_csv(d / f"{EV}-measurements.csv", index=False)
    if with_map:
        pd.DataFrame(MAP).to_csv(d / f"{EV}-measurement-simhit-map.csv", index=False)


def _edit(path, fn):
    df = pd.read_csv(path, dtype={"particle_id": str, "geometry_id": str})
    df = fn(df)
    df.to_csv(path, index=False)


def _raises(d, file_part, column, event=4, match=None):
    with pytest.raises(DataError, match=match) as e:
        src = ACTSSource(d)
        src.read_event(src.event_ids[0])
    err = e.value
    assert file_part in str(err.file), err
    assert err.event == event, err
    assert err.column == column, err
    return err


P1, P2 = packed(1, 0, 5, 0, 0), packed(1, 2, 5, 1, 3)


@pytest.mark.parametrize("split", [False, True], ids=["barcode<=v43", "split>=v44"])
def test_acts_event(tmp_path, split):
    _write_event(tmp_path, split)
    ev = ACTSSource(tmp_path).read_event(4)
    # TrackML layout with the primary vertex + 1 in bits 52-62.
    assert P1 == (2 << 52) | (5 << 36) and P2 == (2 << 52) | (5 << 36) | (1 << 24) | (3 << 12) | 2
    assert unpack_trackml_id(P2) == {"pv": 1, "sv": 2, "part": 5, "gen": 1, "subpart": 3}
    assert sorted(ev.particles.particle_id) == sorted([P1, P2])
    h = ev.hits.set_index("hit_id")
    assert list(h.index) == [1, 2, 3, 4, 5, 6]  # measurement_id + 1
    assert list(h.particle_id) == [P1, P1, P1, P1, P2, 0]  # m5 has no sim hit: the only noise
    assert h.loc[5, "tz"] == 50.0  # truth from the majority particle's first sim hit
    assert h.loc[6, "tz"] == h.loc[6, "z"] and h.loc[6, "tpx"] == 0  # noise: truth = measured position
    np.testing.assert_allclose(h.z, [0, 5, 10, 15, 20, 25])  # finite globals are used as they are
    assert (h.volume_id == 8).all() and (h.layer_id == 2).all() and list(h.module_id) == [100, 101, 102, 103, 104, 105]
    assert dict(zip(ev.particles.particle_id, ev.particles.nhits)) == {P1: 4, P2: 1}
    assert h.weight.sum() == pytest.approx(1.0) and (h.weight.iloc[4:] == 0).all()
    assert ev.particles.set_index("particle_id").loc[P2, "q"] == -1


def test_nan_globals_take_the_linked_sim_hit_position(tmp_path):
    _write_event(tmp_path, globals_="nan")
    h = ACTSSource(tmp_path).read_event(4).hits.set_index("hit_id")
    # Measurements 1 and 4 have NaN globals: they take the (mean) linked sim-hit position, the others keep theirs.
    assert (h.loc[2, "x"], h.loc[2, "z"]) == (1.0, 20.0)
    assert h.loc[5, "x"] == pytest.approx((4 + 5 + 0) / 3) and h.loc[5, "z"] == pytest.approx((50 + 60 + 10) / 3)
    assert (h.loc[1, "x"], h.loc[1, "z"]) == (0.0, 0.0) and h.loc[3, "z"] == 10.0


def test_absent_globals_take_the_linked_sim_hit_position(tmp_path):
    _write_event(tmp_path, globals_="absent")
    # The noise measurement m5 has neither a global position nor a sim hit: refused, naming it.
    err = _raises(tmp_path, "measurements.csv", "global_x, global_y, global_z", match="measurement_id 5")
    assert "no linked sim hit" in err.reason
    _edit(tmp_path / f"{EV}-measurements.csv", lambda df: df[df.measurement_id != 5])
    h = ACTSSource(tmp_path).read_event(4).hits.set_index("hit_id")
    np.testing.assert_allclose(h.x, [0, 1, 2, 3, 3])
    np.testing.assert_allclose(h.z, [10, 20, 30, 40, 40])  # m4: mean of sim hits 4, 5 and 0


def test_simhit_position_notice_logged_once(tmp_path, caplog):
    _write_event(tmp_path, globals_="nan")
    for stem in ("hits", "measurements", "measurement-simhit-map", "particles"):
        (tmp_path / f"event000000005-{stem}.csv").write_bytes((tmp_path / f"{EV}-{stem}.csv").read_bytes())
    src = ACTSSource(tmp_path)
    with caplog.at_level(logging.WARNING, logger="trackpipe.io.acts"):
        for eid in src.event_ids:
            src.read_event(eid)
    notes = [r for r in caplog.records if "linked sim hits" in r.getMessage()]
    assert len(src.event_ids) == 2 and len(notes) == 1


def test_barcode_zero_is_a_particle(tmp_path):
    _write_event(tmp_path)
    zero = str(barcode(0, 0, 0, 0, 0))
    one = str(barcode(*PARTICLES[0][:5]))
    for stem in ("particles", "hits"):
        _edit(tmp_path / f"{EV}-{stem}.csv", lambda df: df.assign(particle_id=df.particle_id.replace(one, zero)))
    ev = ACTSSource(tmp_path).read_event(4)
    p0 = packed(0, 0, 0, 0, 0)
    assert p0 == 1 << 52 and p0 in set(ev.particles.particle_id)
    h = ev.hits.set_index("hit_id")
    assert list(h.particle_id) == [p0, p0, p0, p0, P2, 0]
    assert h.weight.sum() == pytest.approx(1.0) and (h.weight.iloc[:4] > 0).all()


def test_particle_stem_preference(tmp_path):
    _write_event(tmp_path, stem="particles_final")
    # particles_initial is preferred over particles_final when both hold every particle with hits.
    _write_event(tmp_path, stem="particles_initial")
    _edit(tmp_path / f"{EV}-particles_final.csv", lambda df: df.assign(vz=999.0))
    assert (ACTSSource(tmp_path).read_event(4).particles.vz != 999.0).all()
    # A preferred stem that lacks a particle with hits is passed over for one that has it.
    (tmp_path / f"{EV}-particles_initial.csv").unlink()
    _write_event(tmp_path, stem="particles_selected")
    _edit(tmp_path / f"{EV}-particles_selected.csv", lambda df: df.iloc[:1])
    ev = ACTSSource(tmp_path).read_event(4)
    assert (ev.particles.vz == 999.0).all() and len(ev.particles) == 2


def test_particles_selected_without_a_particle_with_hits_is_refused(tmp_path):
    _write_event(tmp_path, stem="particles_selected")
    _edit(tmp_path / f"{EV}-particles_selected.csv", lambda df: df.iloc[:1])
    (tmp_path / f"{EV}-particles.csv").unlink(missing_ok=True)
    err = _raises(tmp_path, "particles_selected.csv", "particle_id", match="in none of the particles files")
    assert "'part': 5, 'gen': 1" in err.reason


@pytest.mark.parametrize("old_name", [False, True], ids=["measurement_id", "hit_id (older ACTS)"])
def test_cells_kept(tmp_path, old_name):
    _write_event(tmp_path)
    cells = pd.DataFrame({"geometry_id": geometry(8, 2, 100), "measurement_id": [0, 0, 4, 5],
                          "channel0": [3, 4, 7, 9], "channel1": [1, 1, 2, 0], "timestamp": 0.0,
                          "value": [0.5, 0.25, 1.0, 2.0]})
    if old_name:
        cells = cells.rename(columns={"measurement_id": "hit_id"})
    cells.to_csv(tmp_path / f"{EV}-cells.csv", index=False)
    c = ACTSSource(tmp_path).read_event(4).cells
    assert list(c.hit_id) == [1, 1, 5, 6] and list(c.ch0) == [3, 4, 7, 9] and list(c.ch1) == [1, 1, 2, 0]
    np.testing.assert_allclose(c.value, [0.5, 0.25, 1.0, 2.0])
    cells.iloc[:, 1] = [0, 0, 4, 17]  # a cell of a measurement that does not exist
    cells.to_csv(tmp_path / f"{EV}-cells.csv", index=False)
    _raises(tmp_path, "cells.csv", "hit_id", match="hit ids not in hits")


def test_sim_hits_are_the_hits_without_measurements(tmp_path):
    _write_event(tmp_path)
    (tmp_path / f"{EV}-measurements.csv").unlink()
    (tmp_path / f"{EV}-measurement-simhit-map.csv").unlink()
    h = ACTSSource(tmp_path).read_event(4).hits
    assert list(h.hit_id) == [1, 2, 3, 4, 5, 6] and list(h.z) == SIM_Z
    assert list(h.particle_id) == [P1] * 4 + [P2] * 2


def test_empty_map_makes_every_measurement_noise(tmp_path):
    _write_event(tmp_path)
    _edit(tmp_path / f"{EV}-measurement-simhit-map.csv", lambda df: df.iloc[:0])
    ev = ACTSSource(tmp_path).read_event(4)
    assert (ev.hits.particle_id == 0).all() and (ev.particles.nhits == 0).all() and len(ev.particles) == 2


def test_majority_tie_takes_the_lowest_particle_id(tmp_path):
    _write_event(tmp_path)
    # m4 -> sim hits 4 (particle 2) and 0 (particle 1): one each, so the lower packed id (particle 1) wins.
    _edit(tmp_path / f"{EV}-measurement-simhit-map.csv", lambda df: df.drop(index=5))
    h = ACTSSource(tmp_path).read_event(4).hits.set_index("hit_id")
    assert P1 < P2 and h.loc[5, "particle_id"] == P1 and h.loc[5, "tz"] == 10.0


# ---------------------------------------------------------------- bad input: file, event and column named


def test_cells_without_measurements(tmp_path):
    _write_event(tmp_path)
    (tmp_path / f"{EV}-measurements.csv").unlink()
    pd.DataFrame({"geometry_id": [1], "measurement_id": [0], "channel0": [1], "channel1": [2], "timestamp": [0.0],
                  "value": [1.0]}).to_csv(tmp_path / f"{EV}-cells.csv", index=False)
    _raises(tmp_path, "cells.csv", "measurement_id", match="no measurements file")


def test_not_a_csv(tmp_path):
    _write_event(tmp_path)
    (tmp_path / f"{EV}-hits.csv").write_bytes(b"")
    _raises(tmp_path, "hits.csv", None, match="not a valid CSV")


def test_missing_column(tmp_path):
    _write_event(tmp_path)
    _edit(tmp_path / f"{EV}-measurements.csv", lambda df: df.drop(columns="geometry_id"))
    _raises(tmp_path, "measurements.csv", "geometry_id", match="missing required")


@pytest.mark.parametrize("globals_,column", [("nan", "global_x"), ("absent", "global_x, global_y, global_z")])
def test_no_position_and_no_map(tmp_path, globals_, column):
    _write_event(tmp_path, globals_=globals_, with_map=False)
    err = _raises(tmp_path, "measurements.csv", column, match="no measurement-simhit-map")
    assert "hits.csv" not in str(err)


def test_no_map_with_globals(tmp_path):
    _write_event(tmp_path, with_map=False)
    _raises(tmp_path, "measurement-simhit-map.csv", "measurement_id", match="truth particle is unknown")


def test_unlinked_map_row(tmp_path):
    _write_event(tmp_path)
    _edit(tmp_path / f"{EV}-measurement-simhit-map.csv",
          lambda df: pd.concat([df, pd.DataFrame({"measurement_id": [42], "hit_id": [1]})]))
    _raises(tmp_path, "measurement-simhit-map.csv", "measurement_id", match="measurement_id 42")


def test_map_hit_out_of_range(tmp_path):
    _write_event(tmp_path)
    _edit(tmp_path / f"{EV}-measurement-simhit-map.csv", lambda df: df.assign(hit_id=df.hit_id.replace(5, 6)))
    _raises(tmp_path, "measurement-simhit-map.csv", "hit_id", match="out of range")


def test_split_field_that_does_not_fit(tmp_path):
    _write_event(tmp_path, split=True)
    _edit(tmp_path / f"{EV}-particles.csv", lambda df: df.assign(particle_id_pv=[5000, 1]))
    _raises(tmp_path, "particles.csv", "particle_id_pv", match="value 5000")


def test_barcode_field_that_does_not_fit(tmp_path):
    _write_event(tmp_path)
    big = str(barcode(1, 0, 5, 0, 4096))  # ACTS sub-particle has 16 bits, TrackML's secondary_id 12
    _edit(tmp_path / f"{EV}-hits.csv", lambda df: df.assign(particle_id=[big] + list(df.particle_id[1:])))
    _raises(tmp_path, "hits.csv", "particle_id", match="'subpart' field")


def test_bad_geometry_id(tmp_path):
    _write_event(tmp_path)
    _edit(tmp_path / f"{EV}-hits.csv", lambda df: df.assign(geometry_id=["-3"] + list(df.geometry_id[1:])))
    _raises(tmp_path, "hits.csv", "geometry_id", match="row 0")


def test_no_particle_id_column(tmp_path):
    _write_event(tmp_path)
    _edit(tmp_path / f"{EV}-particles.csv", lambda df: df.drop(columns="particle_id"))
    _raises(tmp_path, "particles.csv", "particle_id", match="no particle id")


def test_acts_cli_and_geometry_decode(tmp_path):
    _write_event(tmp_path)
    assert main(["ingest", "--format", "acts", str(tmp_path), "--out", str(tmp_path / "s")]) == 0
    assert EventStore(tmp_path / "s").info()["n_hits"] == 6
    v, l, m = decode_geometry_id(np.array([geometry(17, 4, 77) | 0xFF], dtype=np.uint64))
    assert (v[0], l[0], m[0]) == (17, 4, 77)


def test_acts_cli_error_names_file_event_column(tmp_path, capsys):
    _write_event(tmp_path, split=True)
    _edit(tmp_path / f"{EV}-particles.csv", lambda df: df.assign(particle_id_pv=[5000, 1]))
    assert main(["ingest", "--format", "acts", str(tmp_path), "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert f"{EV}-particles.csv" in err and "event 4" in err and "'particle_id_pv'" in err
    assert not (tmp_path / "s").exists()
