import numpy as np
import pandas as pd
import pytest

from trackpipe.cli import main
from trackpipe.io.acts import ACTSSource, decode_geometry_id, pack_trackml_id
from trackpipe.io.store import EventStore


def barcode(pv, sv, part, gen, sub):
    return (pv << 52) | (sv << 40) | (part << 24) | (gen << 16) | sub


def geometry(volume, layer, sensitive):
    return (volume << 56) | (layer << 36) | (sensitive << 8)


# Two particles: a primary of vertex 1 (4 sim hits) and a secondary of vertex 1 (gen 1, 2 sim hits).
PARTICLES = [(1, 0, 5, 0, 0, 211, 0.0, 0.0, 1.0, 2.0, 0.5, 3.0, 1.0),
             (1, 2, 5, 1, 3, -11, 10.0, 5.0, 20.0, 0.1, 0.2, 0.05, -1.0)]


def _write_event(d, split: bool):
    prow = []
    for pv, sv, part, gen, sub, ptype, vx, vy, vz, px, py, pz, q in PARTICLES:
        ids = ({"particle_id_pv": pv, "particle_id_sv": sv, "particle_id_part": part, "particle_id_gen": gen,
                "particle_id_subpart": sub} if split else {"particle_id": barcode(pv, sv, part, gen, sub)})
        prow.append({**ids, "particle_type": ptype, "process": 0, "vx": vx, "vy": vy, "vz": vz, "vt": 0.0,
                     "px": px, "py": py, "pz": pz, "m": 0.14, "q": q})
    pd.DataFrame(prow).to_csv(d / "event000000004-particles.csv", index=False)
    hrows = []
    for k, (pi, z) in enumerate([(0, 10), (0, 20), (0, 30), (0, 40), (1, 50), (1, 60)]):
        pv, sv, part, gen, sub = PARTICLES[pi][:5]
        ids = ({"particle_id_pv": pv, "particle_id_sv": sv, "particle_id_part": part, "particle_id_gen": gen,
                "particle_id_subpart": sub} if split else {"particle_id": barcode(pv, sv, part, gen, sub)})
        hrows.append({**ids, "geometry_id": geometry(8, 2 * (k % 4 + 1), 100 + k), "tx": 1.0 * k, "ty": 2.0,
                      "tz": float(z), "tt": 0.0, "tpx": 1.0, "tpy": 0.0, "tpz": 0.5, "te": 1.0, "deltapx": 0,
                      "deltapy": 0, "deltapz": 0, "deltae": 0, "index": k})
    pd.DataFrame(hrows).to_csv(d / "event000000004-hits.csv", index=False)
    # 6 measurements: m0..m3 -> sim hits 0..3; m4 merges sim hits 4, 5 and 0 (majority: particle 2); m5 is noise.
    meas = pd.DataFrame({"measurement_id": range(6), "geometry_id": [geometry(8, 2, 100 + k) for k in range(6)],
                         "local_key": 0, "local0": 0.0, "local1": 0.0, "phi": 0.0, "theta": 0.0, "time": 0.0,
                         "var_local0": 0.0, "var_local1": 0.0, "var_phi": 0.0, "var_theta": 0.0, "var_time": 0.0,
                         "global_x": [0.1 * k for k in range(6)], "global_y": 1.0, "global_z": [5.0 * k for k in range(6)]})
    meas.to_csv(d / "event000000004-measurements.csv", index=False)
    pd.DataFrame({"measurement_id": [0, 1, 2, 3, 4, 4, 4], "hit_id": [0, 1, 2, 3, 4, 5, 0]}).to_csv(
        d / "event000000004-measurement-simhit-map.csv", index=False)


@pytest.mark.parametrize("split", [False, True], ids=["barcode<=v43", "split>=v44"])
def test_acts_event(tmp_path, split):
    _write_event(tmp_path, split)
    ev = ACTSSource(tmp_path).read_event(4)
    p1 = pack_trackml_id({"pv": np.array([1]), "part": np.array([5]), "gen": np.array([0]),
                          "subpart": np.array([0]), "sv": np.array([0])})[0]
    p2 = pack_trackml_id({"pv": np.array([1]), "part": np.array([5]), "gen": np.array([1]),
                          "subpart": np.array([3]), "sv": np.array([2])})[0]
    assert p1 == (1 << 52) | (5 << 36) and p2 == (1 << 52) | (5 << 36) | (1 << 24) | (3 << 12) | 2
    assert sorted(ev.particles.particle_id) == sorted([p1, p2])
    h = ev.hits.set_index("hit_id")
    assert list(h.index) == [1, 2, 3, 4, 5, 6]  # measurement_id + 1
    assert list(h.particle_id) == [p1, p1, p1, p1, p2, 0]
    assert h.loc[5, "tz"] == 50.0  # truth from the majority particle's sim hit
    np.testing.assert_allclose(h.z, [0, 5, 10, 15, 20, 25])
    assert (h.volume_id == 8).all() and (h.layer_id == 2).all() and list(h.module_id) == [100, 101, 102, 103, 104, 105]
    assert dict(zip(ev.particles.particle_id, ev.particles.nhits)) == {p1: 4, p2: 1}
    # Phase-1 weights: only the 4-hit primary has weight; they sum to 1.
    assert h.weight.sum() == pytest.approx(1.0) and (h.weight.iloc[4:] == 0).all()
    assert (ev.particles.set_index("particle_id").loc[p2, "q"]) == -1


def test_acts_cli_and_geometry_decode(tmp_path):
    _write_event(tmp_path, False)
    assert main(["ingest", "--format", "acts", str(tmp_path), "--out", str(tmp_path / "s")]) == 0
    assert EventStore(tmp_path / "s").info()["n_hits"] == 6
    v, l, m = decode_geometry_id(np.array([geometry(17, 4, 77)], dtype=np.uint64))
    assert (v[0], l[0], m[0]) == (17, 4, 77)


def test_acts_vertex_too_large_is_an_error(tmp_path, capsys):
    _write_event(tmp_path, True)
    df = pd.read_csv(tmp_path / "event000000004-particles.csv")
    df.loc[0, "particle_id_pv"] = 5000
    df.to_csv(tmp_path / "event000000004-particles.csv", index=False)
    assert main(["ingest", "--format", "acts", str(tmp_path), "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "event000000004-particles.csv" in err and "event 4" in err and "'particle_id'" in err
