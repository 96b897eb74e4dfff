import json

import numpy as np
import pandas as pd
import pytest

from trackpipe.cli import main
from trackpipe.datasets import DATASETS, PAPER_SIZES, build_dataset, dataset_section, merge_dataset, shard_range
from trackpipe.errors import ConfigError, DataError
from trackpipe.io.store import EventStore, merge_stores
from trackpipe.reduce import reduce_event, sample_particles, select_volumes, source_rng, split_of_sources
from trackpipe.sim.trackml_like import simulate_trackml

NAMES = ["redvid-linear-10-50", "redvid-helical-10-50", "redvid-helical-50-100", "trackml-10-50", "trackml-200-500",
         "hllhc-pixel"] + [f"{p}-pu{mu}" for p in ("tth", "ttbar") for mu in (0, 5, 20, 50, 200)]


@pytest.fixture(scope="module")
def full_event():
    return next(simulate_trackml({"volumes": [7, 8, 9, 13], "generator": {"mu": 20}}, [4], 1))


def test_every_named_dataset_has_demo_and_paper_sizes():
    assert sorted(DATASETS) == sorted(NAMES) and sorted(PAPER_SIZES) == sorted(NAMES)
    for name in NAMES:
        sec = dataset_section(name)
        assert sec["events"] <= 2000
    assert PAPER_SIZES["redvid-linear-10-50"]["events"] == 100_000
    assert PAPER_SIZES["trackml-200-500"]["events"] * dataset_section("trackml-200-500")["reduce"]["repeats"] == 43_725
    with pytest.raises(ConfigError):
        dataset_section("no-such-set")
    with pytest.raises(ConfigError, match="unknown key"):
        dataset_section("trackml-10-50", {"reduce": {"n_particle": [1, 2]}})


def test_select_volumes_and_sampling(full_event):
    pix = select_volumes(full_event, [7, 8, 9])
    assert set(pix.hits.volume_id) == {7, 8, 9}
    counts = pix.hits[pix.hits.particle_id > 0].particle_id.value_counts()
    np.testing.assert_array_equal(counts.reindex(pix.particles.particle_id).to_numpy(), pix.particles.nhits)
    rng = np.random.default_rng(0)
    n_noise = (pix.hits.particle_id == 0).sum()
    for mode in ("all", "proportional", "none"):
        red = sample_particles(pix, rng, (10, 50), noise=mode)
        assert 10 <= len(red.particles) <= 50
        kept = red.hits[red.hits.particle_id > 0]
        # Every hit of a sampled particle is kept, and nothing else.
        assert set(kept.particle_id) == set(red.particles.particle_id)
        assert len(kept) == pix.hits.particle_id.isin(red.particles.particle_id).sum()
        noise = (red.hits.particle_id == 0).sum()
        expected = {"all": n_noise, "none": 0}.get(mode)
        if expected is None:
            assert 0 < noise < 0.1 * n_noise
        else:
            assert noise == expected


def test_reduce_event_ids_and_weights(full_event):
    cfg = {"volumes": [7, 8, 9], "n_particles": [20, 30], "repeats": 5, "noise": "none", "min_hits": 1,
           "reweight": True}
    reds = list(reduce_event(full_event, cfg, source_rng(1, full_event.event_id)))
    assert [r.event_id for r in reds] == [full_event.event_id * 5 + k for k in range(5)]
    for r in reds:
        assert r.hits.weight.sum() == pytest.approx(1.0, abs=1e-5)
        assert set(r.hits.volume_id) <= {7, 8, 9}
    again = list(reduce_event(full_event, cfg, source_rng(1, full_event.event_id)))
    pd.testing.assert_frame_equal(reds[2].hits, again[2].hits)
    assert not reds[0].particles.particle_id.equals(reds[1].particles.particle_id)


def test_split_of_sources_exact_and_seeded():
    s = split_of_sources(1000, [0.8, 0.1, 0.1], 3)
    assert np.bincount(s).tolist() == [800, 100, 100]
    np.testing.assert_array_equal(s, split_of_sources(1000, [0.8, 0.1, 0.1], 3))
    assert not np.array_equal(s, split_of_sources(1000, [0.8, 0.1, 0.1], 4))
    assert np.bincount(split_of_sources(3, [0.8, 0.1, 0.1], 1), minlength=3).tolist() == [1, 1, 1]
    assert np.bincount(split_of_sources(6, [4, 1, 1], 1)).tolist() == [4, 1, 1]
    with pytest.raises(ConfigError):
        split_of_sources(10, [1, 1], 0)


def test_shard_ranges_cover_everything():
    for n, k, align in ((1000, 3, 256), (7, 7, 1), (10, 3, 1), (5, 8, 1)):
        parts = [shard_range(n, (i, k), align) for i in range(k)]
        assert [i for p in parts for i in p] == list(range(n))
        if align > 1:
            assert all(p.start % align == 0 for p in parts if len(p))


def _store_frames(path):
    st = EventStore(path)
    return st.hits(), st.particles()


def test_redvid_dataset_shards_equal_unsharded(tmp_path):
    section = {"redvid": {"batch_events": 16}, "split": [0.6, 0.2, 0.2]}
    full = build_dataset("redvid-helical-10-50", section, tmp_path / "full", n_events=64, seed=5, plots=False)
    assert sum(full["events"].values()) == 64
    srcs = [set(full["source_ids"][s]) for s in ("train", "val", "test")]
    assert not (srcs[0] & srcs[1] or srcs[0] & srcs[2] or srcs[1] & srcs[2])
    shards = [build_dataset("redvid-helical-10-50", section, tmp_path / f"s{i}", n_events=64, seed=5, shard=(i, 3),
                            plots=False) for i in range(3)]
    assert sum(sum(s["events"].values()) for s in shards) == 64
    with pytest.raises(DataError, match="incomplete"):
        merge_dataset([tmp_path / "s0", tmp_path / "s2"], tmp_path / "bad", plots=False)
    with pytest.raises(DataError, match="belong"):
        merge_dataset([tmp_path / f"s{i}" for i in range(3)], tmp_path / "bad", name="redvid-linear-10-50")
    assert main(["simulate", "--dataset", "redvid-helical-10-50", "--merge", *[str(tmp_path / f"s{i}") for i in range(3)],
                 "--out", str(tmp_path / "merged"), "--no-plots"]) == 0
    merged = json.loads((tmp_path / "merged" / "dataset.json").read_text())
    assert merged["events"] == full["events"]
    for split in ("train", "val", "test"):
        for a, b in zip(_store_frames(tmp_path / "full" / split), _store_frames(tmp_path / "merged" / split)):
            pd.testing.assert_frame_equal(a, b)
    with pytest.raises(Exception, match="more than one store"):
        merge_stores([tmp_path / "full" / "train", tmp_path / "full" / "train"], tmp_path / "dup")


def test_reduced_trackml_dataset_no_leak_and_plots(tmp_path, trackml_dir):
    section = {"trackml": {"generator": {"mu": 20}}, "split": [1, 1, 1]}
    info = build_dataset("trackml-10-50", section, tmp_path / "tml", n_events=3, seed=2,
                         reference_trackml=trackml_dir)
    assert info["events"] == {"train": 5, "val": 5, "test": 5}
    for split in ("train", "val", "test"):
        st = EventStore(tmp_path / "tml" / split)
        assert {int(e) // 5 for e in st.event_ids} == set(info["source_ids"][split])
        for ev in st.iter_events():
            assert 10 <= len(ev.particles) <= 50 and set(ev.hits.volume_id) <= {7, 8, 9}
    summary = json.loads((tmp_path / "tml" / "validation" / "summary.json").read_text())
    assert "reference" in summary and summary["reference"]["hits_per_particle_mean"] > 3
    for fig in ("hits_per_particle", "hits_rz", "pt", "eta", "hits_per_event"):
        assert (tmp_path / "tml" / "validation" / f"{fig}.png").stat().st_size > 5000


def test_real_trackml_events_as_source(tmp_path, trackml_dir):
    section = {"reduce": {"n_particles": [10, 20], "repeats": 2}, "split": [1, 0, 0]}
    info = build_dataset("trackml-10-50", section, tmp_path / "real", trackml_csv=trackml_dir, plots=False)
    assert info["events"]["train"] == 2 and info["source_ids"]["train"] == [1]
    st = EventStore(tmp_path / "real" / "train")
    assert list(st.event_ids) == [2, 3]


def test_cli_simulate(tmp_path, capsys):
    out = tmp_path / "rv"
    assert main(["simulate", "--dataset", "redvid-linear-10-50", "--events", "40", "--seed", "3", "--out", str(out),
                 "--no-plots"]) == 0
    info = json.loads((out / "dataset.json").read_text())
    assert info["seed"] == 3 and sum(info["events"].values()) == 40
    p = EventStore(out / "train").particles()
    assert {"r_0", "theta_d", "z_d"} <= set(p.columns) and set(p.track_type) == {"linear"}
    assert main(["simulate", "--dataset", "redvid-linear-10-50", "--events", "4", "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["simulate", "--dataset", "redvid-linear-10-50", "--shard", "3/2", "--out", str(tmp_path / "x")]) == 2


def test_published_redvid_csv_as_source(tmp_path):
    from trackpipe.io.redvid import write_redvid_csv
    from trackpipe.sim.redvid import simulate_redvid

    events = list(simulate_redvid({"track_types": ["linear"]}, range(10), 4))
    csv = write_redvid_csv(tmp_path / "hits_and_tracks_3d_events_all.csv", events)
    info = build_dataset("redvid-linear-10-50", None, tmp_path / "ds", redvid_csv=csv, plots=False)
    assert info["source_events"] == 10 and info["events"] == {"train": 8, "val": 1, "test": 1}
    back = EventStore(tmp_path / "ds" / "val").read_event(info["source_ids"]["val"][0])
    original = events[info["source_ids"]["val"][0]]
    np.testing.assert_allclose(back.hits.x, original.hits.x, atol=1e-3)
