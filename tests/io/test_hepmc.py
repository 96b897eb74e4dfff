"""HepMC3 ingest on real generator files (EPOS-LHC and Pythia 6 from pyhepmc's tests, e+e- -> tau tau and a
parton-level event from HepMC3's repository; tests/data/hepmc/PROVENANCE.md)."""

import gzip
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyhepmc
import pytest

from trackpipe.cli import main
from trackpipe.errors import DataError
from trackpipe.io.hepmc import HepMCSource, pdg_charge3
from trackpipe.io.ingest import ingest, open_source
from trackpipe.io.store import EventStore
from trackpipe.sim.generators import pythia_available
from trackpipe.sim.geometry import VOLUMES

DATA = Path(__file__).resolve().parents[1] / "data" / "hepmc"
EPOS = DATA / "eposlhc_large.hepmc3.gz"  # one 10 TeV pp event, 2661 particles, full decay tree
TAUS = DATA / "ee_tautau_5events.hepmc3"  # five e+e- -> tau+ tau- events (taus undecayed, status 1)
PARTON = DATA / "parton_level_1event.hepmc3"
SIBYLL = DATA / "sibyll21_no_vertices.hepmc3"  # one event, no vertices, its E line right after the header
# Charges (e) of the long-lived particles generators leave in the final state; independent of pdg_charge3.
CHARGED = {11: -1, 13: -1, 15: -1, 211: 1, 321: 1, 2212: 1, 3112: -1, 3222: 1, 3312: -1, 3334: -1}
NEUTRAL = {12, 14, 16, 22, 111, 130, 310, 2112, 3122, 3212, 3322}


def _file_particles(path):
    """(event number, status-1 particles as a DataFrame) read directly with pyhepmc, in GeV and mm."""
    out = []
    with pyhepmc.open(str(path)) as f:
        for ev in f:
            rows = []
            for p in ev.particles:
                if p.status != 1:
                    continue
                v = p.production_vertex.position if p.production_vertex is not None else ev.event_pos()
                m = p.momentum
                rows.append((p.pid, m.px, m.py, m.pz, v.x, v.y, v.z))
            out.append((ev.event_number, pd.DataFrame(rows, columns=["pdg", "px", "py", "pz", "vx", "vy", "vz"])))
    return out


def _charged_in_acceptance(df, pt_min=0.1, eta_max=4.0):
    unknown = set(df.pdg.abs()) - set(CHARGED) - NEUTRAL
    assert not unknown, f"extend the test's charge table: {unknown}"
    charged = df[df.pdg.abs().isin(list(CHARGED))]
    pt = np.hypot(charged.px, charged.py)
    return charged[(pt >= pt_min) & (np.abs(np.arcsinh(charged.pz / pt)) <= eta_max)]


@pytest.fixture(scope="module")
def epos_event():
    return HepMCSource(EPOS, seed=5).read_event(127)


def test_epos_charged_final_state_becomes_particles_and_hits(epos_event):
    ((number, truth),) = _file_particles(EPOS)
    expected = _charged_in_acceptance(truth)
    ev = epos_event
    p, h = ev.particles, ev.hits
    assert number == 127 and len(expected) > 300
    assert len(p) == len(expected)
    # File order is kept: primary id k is the k-th accepted particle; momenta, PDG id and charge carried over.
    np.testing.assert_allclose(p.px, expected.px, rtol=1e-6)
    np.testing.assert_allclose(p.pz, expected.pz, rtol=1e-6)
    np.testing.assert_array_equal(p.particle_type, expected.pdg)
    np.testing.assert_array_equal(p.q, [CHARGED[abs(c)] * np.sign(c) for c in expected.pdg])
    pid = p.particle_id.to_numpy()
    assert ((pid >> 52) == 1).all() and np.array_equal((pid >> 36) & 0xFFFF, np.arange(1, len(p) + 1))
    # Every central particle with enough pT from near the beam line crosses at least the pixel barrel layers.
    pt, eta = np.hypot(p.px, p.py), np.arcsinh(p.pz / np.hypot(p.px, p.py))
    central = (pt > 0.5) & (np.abs(eta) < 2.0) & (np.hypot(p.vx, p.vy) < 1.0)
    assert central.sum() > 50 and (p.nhits[central] >= 4).all()
    assert (p.nhits > 0).mean() > 0.9  # |eta| < 4 and pT > 0.1 GeV: nearly all reach a sensitive layer
    # Weights and noise exactly as the simulator makes them.
    assert h.weight.sum() == pytest.approx(1.0, abs=1e-5) and (h.weight[h.particle_id == 0] == 0).all()
    assert 0 < (h.particle_id == 0).sum() < 0.5 * len(h)
    assert sorted(h.hit_id) == list(range(1, len(h) + 1))


def test_hits_lie_on_detector_layers(epos_event):
    h = epos_event.hits[epos_event.hits.particle_id > 0]
    assert set(h.volume_id) == set(VOLUMES)
    for vol, spec in VOLUMES.items():
        sel = h[h.volume_id == vol]
        pos = np.asarray(spec["pos"])[sel.layer_id.to_numpy() // 2 - 1]
        if spec["kind"] == "barrel":
            np.testing.assert_allclose(np.hypot(sel.x, sel.y), pos, atol=1e-3 * pos.max())
        else:
            np.testing.assert_allclose(sel.z, pos, atol=1e-3 * np.abs(pos).max())


def test_same_seed_identical_store_other_seed_differs(tmp_path):
    def digest(path):
        return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(path.iterdir())
                if f.suffix == ".parquet"}

    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        ingest("hepmc", TAUS, tmp_path / name, seed=seed)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert digest(tmp_path / "a")["hits.parquet"] != digest(tmp_path / "c")["hits.parquet"]
    # An event depends on (seed, event id) only, not on the events read before it.
    alone = HepMCSource(TAUS, seed=3).read_event(3)
    pd.testing.assert_frame_equal(alone.hits, EventStore(tmp_path / "a").read_event(3).hits, check_dtype=False)


def test_tau_events_numbers_and_gzip_equals_plain(tmp_path):
    src = HepMCSource(TAUS, seed=1)
    files = _file_particles(TAUS)
    assert src.event_ids == [n for n, _ in files] == [0, 1, 2, 3, 4] and src.event_numbering == "hepmc"
    for (number, truth), eid in zip(files, src.event_ids):
        ev = src.read_event(eid)
        assert len(ev.particles) == len(_charged_in_acceptance(truth))
        assert set(ev.particles.particle_type.abs()) <= {15}
    gz = tmp_path / "taus.hepmc3.gz"
    gz.write_bytes(gzip.compress(TAUS.read_bytes()))
    a, b = HepMCSource(TAUS, seed=1), HepMCSource(gz, seed=1)
    assert a.event_ids == b.event_ids
    for eid in (0, 4):
        pd.testing.assert_frame_equal(a.read_event(eid).hits, b.read_event(eid).hits)


def test_event_without_vertices_starts_at_the_event_position():
    src = HepMCSource(SIBYLL, trackml={"generator": {"beam_spot": [0.0, 0.0, 0.0]}})
    ((number, truth),) = _file_particles(SIBYLL)
    assert src.event_ids == [number] == [0]
    ev = src.read_event(0)
    expected = _charged_in_acceptance(truth)
    assert len(ev.particles) == len(expected) > 3
    np.testing.assert_array_equal(ev.particles[["vx", "vy", "vz"]].to_numpy(), 0.0)
    np.testing.assert_array_equal(ev.particles.particle_type, expected.pdg)


def test_units_mev_cm_are_converted(tmp_path):
    with pyhepmc.open(str(EPOS)) as f:
        event = f.read()
    event.set_units(pyhepmc.Units.MEV, pyhepmc.Units.CM)  # HepMC3 converts the values
    converted = tmp_path / "epos_mev_cm.hepmc3"
    with pyhepmc.open(str(converted), "w") as out:
        out.write(event)
    assert "U MEV CM" in converted.read_text()
    (_, mm_truth), = _file_particles(EPOS)
    # Displaced vertices (up to ~5 um for the charged ones) make a missing cm -> mm factor visible.
    assert np.abs(_charged_in_acceptance(mm_truth).vz).max() > 1e-3
    # Beam spot off so that particle vertices are the file's, in mm.
    cfg = {"generator": {"beam_spot": [0.0, 0.0, 0.0]}}
    ref = HepMCSource(EPOS, trackml=cfg, seed=2).read_event(127)
    got = HepMCSource(converted, trackml=cfg, seed=2).read_event(127)
    pd.testing.assert_series_equal(got.particles.particle_id, ref.particles.particle_id)
    for c in ("px", "py", "pz"):
        np.testing.assert_allclose(got.particles[c], ref.particles[c], rtol=1e-5)
    for c in ("vx", "vy", "vz"):
        np.testing.assert_allclose(got.particles[c], ref.particles[c], rtol=1e-5, atol=1e-7)
    assert len(got.hits) == len(ref.hits)
    np.testing.assert_allclose(got.hits[["x", "y", "z"]], ref.hits[["x", "y", "z"]], atol=1e-2)


def test_pileup_overlay_uses_the_generator_mu():
    hard_only = HepMCSource(TAUS, seed=7).read_event(2)
    cfg = {"generator": {"source": "parametric", "mu": 4.0}}
    with_pu = HepMCSource(TAUS, trackml=cfg, seed=7).read_event(2)
    vertex = with_pu.particles.particle_id.to_numpy() >> 52
    assert vertex.max() >= 2 and (vertex == 1).sum() == len(hard_only.particles)
    # The file's collision comes first and keeps its particles (the beam spot is drawn before the pile-up).
    first = with_pu.particles[vertex == 1].reset_index(drop=True)
    pd.testing.assert_frame_equal(first[["px", "py", "pz", "vx", "vy", "vz", "q"]],
                                  hard_only.particles[["px", "py", "pz", "vx", "vy", "vz", "q"]])
    assert len(with_pu.hits) > len(hard_only.hits)


def test_events_are_streamed_not_reparsed(monkeypatch):
    opened = []
    real_open = pyhepmc.open

    def counting_open(*args, **kwargs):
        opened.append(args[0])
        return real_open(*args, **kwargs)

    monkeypatch.setattr(pyhepmc, "open", counting_open)
    src = HepMCSource(TAUS)
    for eid in src.event_ids:
        src.read_event(eid)
    assert len(opened) == 1  # in order: one pass over the file
    src.read_event(1)  # going back reopens once and skips forward
    assert len(opened) == 2


def test_duplicated_event_numbers_fall_back_to_file_order(tmp_path):
    text = "\n".join("E 7 " + line[2:].split(" ", 1)[1] if line.startswith("E ") else line
                     for line in TAUS.read_text().splitlines())
    dup = tmp_path / "dup.hepmc3"
    dup.write_text(text + "\n")
    src = HepMCSource(dup)
    assert src.event_ids == [0, 1, 2, 3, 4] and src.event_numbering == "index"
    pd.testing.assert_frame_equal(src.read_event(3).particles.drop(columns="event_id"),
                                  HepMCSource(TAUS).read_event(3).particles.drop(columns="event_id"))


def test_bad_files_are_named():
    with pytest.raises(DataError, match=r"fractional charge, PDG ids \[-2103, -3, -2, -1, 1, 2, 3, 2103\]") as e:
        HepMCSource(PARTON).read_event(1)
    assert e.value.event == 1 and str(PARTON) in str(e.value)


def test_hepmc2_and_truncated_files(tmp_path):
    v2 = tmp_path / "v2.hepmc"
    v2.write_text("HepMC::Version 2.06.09\nHepMC::IO_GenEvent-START_EVENT_LISTING\nE 1 -1 -1 -1 -1 0 0 0 0 0 0\n")
    with pytest.raises(DataError, match="HepMC2"):
        HepMCSource(v2)
    lines = TAUS.read_text().splitlines()
    cut = tmp_path / "cut.hepmc3"
    last_e = max(i for i, line in enumerate(lines) if line.startswith("E "))
    cut.write_text("\n".join(lines[: last_e + 3]) + "\n")  # the last event loses most of its particles
    src = HepMCSource(cut)
    assert src.event_ids == [0, 1, 2, 3, 4]
    src.read_event(3)
    with pytest.raises(DataError) as e:
        src.read_event(4)
    assert e.value.event == 4
    empty_gz = tmp_path / "broken.hepmc3.gz"
    empty_gz.write_bytes(gzip.compress(TAUS.read_bytes())[:200])
    with pytest.raises(DataError, match="truncated or corrupt"):
        HepMCSource(empty_gz)


def test_cli_ingest_hepmc(tmp_path, capsys):
    out = tmp_path / "store"
    assert main(["ingest", "--format", "hepmc", str(TAUS), "--out", str(out), "--seed", "11"]) == 0
    assert "wrote 5 event(s)" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 11 and manifest["n_events"] == 5 and manifest["source"]["format"] == "hepmc"
    assert manifest["config"]["trackml"]["generator"]["mu"] == 0.0
    pd.testing.assert_frame_equal(EventStore(out).read_event(2).hits.reset_index(drop=True),
                                  HepMCSource(TAUS, seed=11).read_event(2).hits, check_dtype=False)
    # open_source passes the simulation section and seed; other formats accept and ignore them.
    src = open_source("hepmc", TAUS, trackml={"volumes": [7, 8, 9]}, seed=11)
    assert set(src.read_event(0).hits.volume_id) <= {7, 8, 9}
    reduced = DATA.parent / "trackml_reduced" / "trackml_10to50_2events.csv"
    assert open_source("trackml-reduced", reduced, trackml={"volumes": [7]}, seed=3).event_ids == [0, 1]


def test_pdg_charge_rule():
    table = {211: 3, -211: -3, 321: 3, 311: 0, 130: 0, 310: 0, 2212: 3, -2212: -3, 2112: 0, 3122: 0, 3222: 3,
             3112: -3, 3312: -3, 3334: -3, 11: -3, -13: 3, 22: 0, 411: 3, 421: 0, 431: 3, -511: 0, 521: 3, 541: 3,
             4122: 3, 5122: 0, 4222: 6, 1000020040: 6, 1000822080: 246, 2203: 4, 2101: 1, 1: -1, 2: 2, 24: 3}
    assert {p: pdg_charge3(p) for p in table} == table


@pytest.mark.skipif(not pythia_available(), reason="pythia8mc not installed")
def test_pdg_charge_agrees_with_pythia_on_the_epos_event():
    import pythia8mc

    data = pythia8mc.Pythia("", False).particleData
    with pyhepmc.open(str(EPOS)) as f:
        ids = {int(p.pid) for p in f.read().particles}
    known = [i for i in ids if data.isParticle(i)]
    assert len(known) > 40
    assert {i: pdg_charge3(i) for i in known} == {i: data.chargeType(i) for i in known}
