"""The ACTS CSV reader on real ACTS-format outputs that other projects checked into public repositories.

Samples and their provenance: tests/data/acts/PROVENANCE.md. Every expected count is read from the raw
CSV files here, independently of the reader. The v43.3 (`global_x/y/z`) and v44 (split particle id)
header variants exist in no public sample; the tests marked CONSTRUCTED build them from a real file by
the column transformation written next to them.
"""

import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trackpipe.cli import main
from trackpipe.io.acts import ACTSSource, barcode_fields, pack_trackml_id
from trackpipe.io.store import EventStore
from trackpipe.metrics import trackml_score

DATA = Path(__file__).resolve().parents[1] / "data" / "acts"
SCORED = ["gnn4itk_odd/exact", "gnn4itk_odd/geometric", "traccc_single_tracks"]
ALL = [*SCORED, "traccc_mock"]


def raw(sample, event, stem, **kw):
    d = DATA / sample
    path = next(d.glob(f"event{event:09d}-{stem}.csv*"))
    return pd.read_csv(path, dtype={"particle_id": "uint64", "geometry_id": "uint64"}, **kw)


def events(sample):
    return ACTSSource(DATA / sample).event_ids


def packed_barcodes(barcodes):
    return pack_trackml_id(barcode_fields(np.asarray(barcodes, np.uint64)))


def particle_stem(sample, event):
    d = DATA / sample
    return next(s for s in ("particles_initial", "particles") if list(d.glob(f"event{event:09d}-{s}.csv*")))


def perfect_submission(hits):
    pid = hits.particle_id.to_numpy()
    noise = pid == 0
    track = pid.copy()
    track[noise] = pid.max() + 1 + np.arange(noise.sum())  # each noise hit alone
    return pd.DataFrame({"event_id": hits.event_id, "hit_id": hits.hit_id, "track_id": track})


@pytest.mark.parametrize("sample", ALL)
def test_every_measurement_and_particle_ingested(sample):
    src = ACTSSource(DATA / sample)
    assert src.event_ids
    for eid in src.event_ids:
        ev = src.read_event(eid)
        meas = raw(sample, eid, "measurements")
        simmap = raw(sample, eid, "measurement-simhit-map")
        sim = raw(sample, eid, "hits")
        parts = raw(sample, eid, particle_stem(sample, eid))
        assert len(ev.hits) == len(meas) and sorted(ev.hits.hit_id) == sorted(meas.measurement_id + 1)
        assert len(ev.particles) == len(parts)
        assert set(ev.particles.particle_id) == set(packed_barcodes(parts.particle_id))
        # Particle and measurement truth, recomputed from the raw map (1 sim hit per measurement in these samples).
        assert not simmap.measurement_id.duplicated().any()
        truth = simmap.assign(pid=packed_barcodes(sim.particle_id.to_numpy()[simmap.hit_id]))
        h = ev.hits.set_index("hit_id")
        np.testing.assert_array_equal(h.loc[truth.measurement_id + 1, "particle_id"], truth.pid)
        # Noise only where a measurement truly has no sim hit: none in these samples.
        assert (ev.hits.particle_id == 0).sum() == (~meas.measurement_id.isin(simmap.measurement_id)).sum() == 0
        # volume / layer / module: the ACTS GeometryIdentifier masks, decoded here with Python ints.
        gid = [int(g) for g in meas.geometry_id]
        want = pd.DataFrame({"volume_id": [g >> 56 for g in gid], "layer_id": [(g >> 36) & 0xFFF for g in gid],
                             "module_id": [(g >> 8) & 0xFFFFF for g in gid]}, index=meas.measurement_id + 1)
        pd.testing.assert_frame_equal(h.loc[want.index, list(want.columns)], want, check_dtype=False,
                                      check_names=False)


@pytest.mark.parametrize("sample", ALL)
def test_positions_are_the_linked_sim_hit_positions(sample):
    """These pre-v43.3 measurements have no globals: x, y, z = tx, ty, tz of the linked sim hit."""
    for eid in events(sample):
        ev = ACTSSource(DATA / sample).read_event(eid)
        simmap = raw(sample, eid, "measurement-simhit-map")
        sim = raw(sample, eid, "hits")
        h = ev.hits.set_index("hit_id").loc[simmap.measurement_id + 1]
        for c in "xyz":
            np.testing.assert_array_equal(h[c].to_numpy(), sim[f"t{c}"].to_numpy(np.float32)[simmap.hit_id])


@pytest.mark.parametrize("sample", SCORED)
def test_perfect_submission_scores_one(sample):
    for eid in events(sample):
        hits = ACTSSource(DATA / sample).read_event(eid).hits
        assert hits.weight.sum() == pytest.approx(1.0, abs=1e-6)
        truth = hits[["event_id", "hit_id", "particle_id", "weight"]]
        assert trackml_score(truth, perfect_submission(hits)) == 1.0


def test_traccc_barcode_zero_is_a_real_particle():
    for eid in events("traccc_single_tracks"):
        assert (raw("traccc_single_tracks", eid, "particles").particle_id == 0).all()
        ev = ACTSSource(DATA / "traccc_single_tracks").read_event(eid)
        pid = int(packed_barcodes([0])[0])
        assert pid != 0 and list(ev.particles.particle_id) == [pid] and ev.particles.nhits.iloc[0] == len(ev.hits)
        assert (ev.hits.particle_id == pid).all() and (ev.hits.weight > 0).all()


def test_particles_initial_preferred_over_particles_final():
    sample = "gnn4itk_odd/exact"
    ev = ACTSSource(DATA / sample).read_event(0)
    initial, final = raw(sample, 0, "particles_initial"), raw(sample, 0, "particles_final")
    assert (initial.vz != final.vz).any()  # final = where the particle ended
    got = ev.particles.set_index("particle_id").loc[packed_barcodes(initial.particle_id)]
    np.testing.assert_array_equal(got.vz.to_numpy(), initial.vz.to_numpy(np.float32))
    np.testing.assert_array_equal(got.px.to_numpy(), initial.px.to_numpy(np.float32))


@pytest.mark.parametrize("sample,column", [("gnn4itk_odd/geometric", "hit_id"), ("traccc_mock", "measurement_id")])
def test_cells_kept(sample, column):
    cells = raw(sample, 0, "cells")
    assert column in cells.columns  # older ACTS named the measurement column hit_id
    got = ACTSSource(DATA / sample).read_event(0).cells
    key = ["hit_id", "ch0", "ch1"]
    want = pd.DataFrame({"hit_id": cells[column] + 1, "ch0": cells.channel0, "ch1": cells.channel1,
                         "value": cells.value.astype(np.float32)}).sort_values(key, ignore_index=True)
    got = got[["hit_id", "ch0", "ch1", "value"]].sort_values(key, ignore_index=True)
    assert len(got) == len(cells)
    pd.testing.assert_frame_equal(got, want, check_dtype=False)


@pytest.mark.parametrize("sample", ["gnn4itk_odd/geometric", "traccc_single_tracks"])
def test_cli_ingest_real_sample(tmp_path, sample):
    out = tmp_path / "store"
    assert main(["ingest", "--format", "acts", str(DATA / sample), "--out", str(out)]) == 0
    store = EventStore(out)
    ids = events(sample)
    assert list(store.event_ids) == ids
    assert store.info()["n_hits"] == sum(len(raw(sample, e, "measurements")) for e in ids)
    assert store.has_cells == (sample == "gnn4itk_odd/geometric")
    for e in ids:
        back = store.read_event(e).hits.sort_values("hit_id", ignore_index=True)
        direct = ACTSSource(DATA / sample).read_event(e).hits.sort_values("hit_id", ignore_index=True)
        pd.testing.assert_frame_equal(back[direct.columns], direct, check_dtype=False)


# ---- CONSTRUCTED header variants (no public sample exists; built from the real files above) ----

def _copy(sample, dst):
    shutil.copytree(DATA / sample, dst)
    return dst


def _rewrite(path, fn):
    df = pd.read_csv(path, dtype={"particle_id": "uint64", "geometry_id": "uint64"})
    out = fn(df)
    for p in path.parent.glob(path.name.split(".csv")[0] + ".csv*"):
        p.unlink()
    out.to_csv(path.parent / (path.name.split(".csv")[0] + ".csv"), index=False)


def _split_ids(df):
    """CONSTRUCTED v44 variant: the barcode column becomes particle_id_pv, _sv, _part, _gen, _subpart, at the
    barcode's place (first columns, i.e. before geometry_id in hits), values from the <= v43 bit layout."""
    f = barcode_fields(df.particle_id.to_numpy(np.uint64))
    split = pd.DataFrame({f"particle_id_{k}": f[k] for k in ("pv", "sv", "part", "gen", "subpart")})
    return pd.concat([split, df.drop(columns="particle_id")], axis=1)


@pytest.mark.parametrize("sample", ["gnn4itk_odd/exact", "traccc_single_tracks"])
def test_constructed_v44_split_ids_read_like_the_real_barcodes(tmp_path, sample):
    d = _copy(sample, tmp_path / "v44")
    for p in sorted(d.glob("event*-hits.csv*")) + sorted(d.glob("event*-particles*.csv*")):
        _rewrite(p, _split_ids)
    assert list(pd.read_csv(next(d.glob("event*-hits.csv"))).columns[:6]) == [
        "particle_id_pv", "particle_id_sv", "particle_id_part", "particle_id_gen", "particle_id_subpart", "geometry_id"]
    for eid in events(sample):
        real = ACTSSource(DATA / sample).read_event(eid)
        v44 = ACTSSource(d).read_event(eid)
        pd.testing.assert_frame_equal(v44.hits, real.hits)
        pd.testing.assert_frame_equal(v44.particles, real.particles)


def test_constructed_v43_3_globals_finite_used_nan_fall_back_logged_once(tmp_path, caplog):
    """CONSTRUCTED v43.3 variant of the traccc events: global_x/y/z appended to measurements, set to the linked
    sim-hit position + (1, 2, 3) mm for finite rows (so that using them is visible) and NaN for every third row
    (as ACTS writes without cluster output)."""
    sample = "traccc_single_tracks"
    d = _copy(sample, tmp_path / "v43_3")
    for eid in events(sample):
        sim, simmap = raw(sample, eid, "hits"), raw(sample, eid, "measurement-simhit-map")
        pos = sim[["tx", "ty", "tz"]].to_numpy()[simmap.set_index("measurement_id").hit_id]

        def add_globals(m, pos=pos):
            g = pos[m.measurement_id] + [1.0, 2.0, 3.0]
            g[::3] = np.nan
            return m.assign(global_x=g[:, 0], global_y=g[:, 1], global_z=g[:, 2])
        _rewrite(d / f"event{eid:09d}-measurements.csv", add_globals)
    src = ACTSSource(d)
    with caplog.at_level(logging.WARNING, logger="trackpipe.io.acts"):
        for eid in src.event_ids:
            h = src.read_event(eid).hits.sort_values("hit_id")
            sim, simmap = raw(sample, eid, "hits"), raw(sample, eid, "measurement-simhit-map")
            pos = sim[["tx", "ty", "tz"]].to_numpy()[simmap.set_index("measurement_id").hit_id]
            want = pos + [1.0, 2.0, 3.0]
            want[::3] = pos[::3]
            np.testing.assert_array_equal(h[["x", "y", "z"]].to_numpy(), want.astype(np.float32))
    notes = [r for r in caplog.records if "linked sim hits" in r.getMessage()]
    assert len(src.event_ids) == 3 and len(notes) == 1
