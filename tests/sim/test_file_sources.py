"""Datasets read from files: several files as one ordered source, sections with `source`, sharded ingest."""

import json
import re
import zipfile
from pathlib import Path

import jsonschema
import pandas as pd
import pytest
import yaml

from trackpipe.datasets import build_dataset, dataset_section, merge_dataset
from trackpipe.errors import ConfigError, DataError
from trackpipe.io.store import EventStore
from trackpipe.io.trackml import TrackMLSource
from trackpipe.sources import MultiSource, open_dataset_source, source_members

ROOT = Path(__file__).resolve().parents[2]
ACTS = ROOT / "tests" / "data" / "acts"
PARTS = ("hits", "particles", "truth")


def _trackml_zip(path: Path, real_dir: Path, ids) -> Path:
    """A zip of the real TrackML event saved under other event ids (the files carry no event id)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as z:
        for eid in ids:
            for part in PARTS:
                z.write(real_dir / f"event000000001-{part}.csv.gz", f"train/event{eid:09d}-{part}.csv.gz")
    return path


def _trackml_dir(path: Path, real_dir: Path, ids) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for eid in ids:
        for part in PARTS:
            (path / f"event{eid:09d}-{part}.csv.gz").write_bytes((real_dir / f"event000000001-{part}.csv.gz").read_bytes())
    return path


def test_glob_of_zips_is_one_source_in_path_order(tmp_path, trackml_dir):
    # Path order decides, not event ids: b.zip's events come after a.zip's although their ids are smaller.
    _trackml_zip(tmp_path / "train_b.zip", trackml_dir, [2, 3])
    _trackml_zip(tmp_path / "train_a.zip", trackml_dir, [7])
    (tmp_path / "other.zip").write_bytes(b"not matched by the glob")
    members = source_members("trackml", str(tmp_path / "train_*.zip"))
    assert members == [tmp_path / "train_a.zip", tmp_path / "train_b.zip"]
    src = MultiSource("trackml", members)
    assert src.event_ids == [7, 2, 3]
    assert src.file_of(3) == tmp_path / "train_b.zip"
    ev = src.read_event(3, with_cells=False)
    ref = TrackMLSource(trackml_dir).read_event(1, with_cells=False)
    assert ev.event_id == 3
    pd.testing.assert_frame_equal(ev.hits.drop(columns="event_id"), ref.hits.drop(columns="event_id"))
    with pytest.raises(DataError, match="no such event"):
        src.read_event(1)


def test_directory_of_zips_and_event_dirs(tmp_path, trackml_dir):
    root = tmp_path / "trackml"
    _trackml_zip(root / "train_2.zip", trackml_dir, [20])
    _trackml_dir(root / "train_1", trackml_dir, [10, 11])
    (root / "notes.txt").write_text("ignored: neither a zip nor an event directory")
    assert source_members("trackml", root) == [root / "train_1", root / "train_2.zip"]
    assert open_dataset_source({"format": "trackml", "path": str(root)}).event_ids == [10, 11, 20]
    # A directory that itself holds event files is one source, as is a single zip.
    assert source_members("trackml", root / "train_1") == [root / "train_1"]
    assert source_members("trackml", root / "train_2.zip") == [root / "train_2.zip"]


def test_duplicate_event_id_across_files_names_both(tmp_path, trackml_dir):
    a = _trackml_zip(tmp_path / "a.zip", trackml_dir, [1, 2])
    b = _trackml_zip(tmp_path / "b.zip", trackml_dir, [3, 2])
    with pytest.raises(DataError, match="event id 2 is in two source files") as err:
        MultiSource("trackml", [a, b])
    assert str(a) in str(err.value) and str(b) in str(err.value) and err.value.event == 2


def test_cap_opens_only_the_files_it_needs(tmp_path, trackml_dir):
    _trackml_zip(tmp_path / "s1.zip", trackml_dir, [1, 2])
    _trackml_zip(tmp_path / "s2.zip", trackml_dir, [3])
    (tmp_path / "s3.zip").write_bytes(b"corrupt: opening it would fail")
    src = open_dataset_source({"format": "trackml", "path": str(tmp_path / "s*.zip")}, limit=3)
    assert src.event_ids == [1, 2, 3] and src.members_used == [tmp_path / "s1.zip", tmp_path / "s2.zip"]
    assert MultiSource("trackml", src.members, limit=1).event_ids == [1]
    with pytest.raises(DataError, match="zip"):
        MultiSource("trackml", src.members)  # without the cap the corrupt third file is opened


def test_missing_paths_are_config_errors_naming_them(tmp_path):
    with pytest.raises(ConfigError, match=r"datasets\.x\.source\.path: .*nowhere.*no such file"):
        source_members("trackml", tmp_path / "nowhere", where="datasets.x.source.path")
    with pytest.raises(ConfigError, match=r"train_\*\.zip.* matches no trackml"):
        source_members("trackml", str(tmp_path / "train_*.zip"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="holds no redvid"):
        source_members("redvid", tmp_path / "empty")
    with pytest.raises(ConfigError, match="format 'root'"):
        source_members("root", tmp_path)


def test_redvid_and_acts_directories(tmp_path):
    import shutil

    from trackpipe.io.redvid import write_redvid_csv
    from trackpipe.sim.redvid import simulate_redvid

    rv = tmp_path / "redvid"
    rv.mkdir()
    write_redvid_csv(rv / "part2.csv", simulate_redvid({"track_types": ["linear"]}, range(3, 5), 1))
    write_redvid_csv(rv / "part1.csv", simulate_redvid({"track_types": ["linear"]}, range(0, 3), 1))
    src = open_dataset_source({"format": "redvid", "path": str(rv)})
    assert src.event_ids == [0, 1, 2, 3, 4] and src.file_of(4) == rv / "part2.csv"
    assert len(src.read_event(4).hits) > 0

    # Real ACTS samples (tests/data/acts): a directory of event directories is one source ...
    acts = tmp_path / "acts"
    shutil.copytree(ACTS / "traccc_single_tracks", acts / "run1")
    (acts / "README").write_text("neither an event directory nor read")
    src = open_dataset_source({"format": "acts", "path": str(acts)})
    assert src.event_ids == [0, 1, 2] and src.read_event(2).event_id == 2
    # ... and the GNN4ITk event 0 beside them repeats event id 0: an error naming both directories.
    shutil.copytree(ACTS / "gnn4itk_odd" / "exact", acts / "run2")
    with pytest.raises(DataError, match="event id 0 is in two source files") as err:
        open_dataset_source({"format": "acts", "path": str(acts / "run*")})
    assert str(acts / "run1") in str(err.value) and str(acts / "run2") in str(err.value)


def test_hepmc_and_reduced_trackml_files(tmp_path):
    from trackpipe.io.ingest import open_source

    # Real HepMC3 files (tests/data/hepmc) by glob: the e+e- file's events 0-4, then EPOS-LHC's event 127.
    hepmc = {"format": "hepmc", "path": str(ROOT / "tests" / "data" / "hepmc" / "e*.hepmc3*")}
    assert open_dataset_source(hepmc).event_ids == [0, 1, 2, 3, 4, 127]
    info = build_dataset("hep", {"source": hepmc, "events": 2, "split": [1, 0, 0], "seed": 9}, tmp_path / "hep",
                         plots=False)
    assert info["source_ids"]["train"] == [0, 1] and info["config"]["trackml"]["generator"]["mu"] == 0.0
    # No pile-up unless asked for: the same hits as the HepMC reader's own default.
    direct = open_source("hepmc", ROOT / "tests" / "data" / "hepmc" / "ee_tautau_5events.hepmc3", seed=9).read_event(1)
    pd.testing.assert_frame_equal(EventStore(tmp_path / "hep" / "train").read_event(1).hits.reset_index(drop=True),
                                  direct.hits.reset_index(drop=True), check_dtype=False, check_like=True)
    piled = dataset_section("tth-pu200", {"source": hepmc})["trackml"]["generator"]
    assert piled["mu"] == 200.0 and piled["process"] == "tth"  # a named pile-up level keeps its <mu>
    # The e+e- file and SIBYLL's file both number their first event 0.
    with pytest.raises(DataError, match="event id 0 is in two source files"):
        open_dataset_source({"format": "hepmc", "path": str(ROOT / "tests" / "data" / "hepmc" / "[es][ei]*.hepmc3")})

    reduced = tmp_path / "reduced"
    reduced.mkdir()
    (reduced / "trackml_10to50_2events.csv").write_bytes(
        (ROOT / "tests" / "data" / "trackml_reduced" / "trackml_10to50_2events.csv").read_bytes())
    src = open_dataset_source({"format": "trackml-reduced", "path": str(reduced)})
    assert src.event_ids == [0, 1] and src.members_used == [reduced / "trackml_10to50_2events.csv"]


def test_source_sections():
    sec = dataset_section("trackml-10-50", {"source": {"format": "trackml", "path": "x.zip"}})
    # The named dataset's reduction and split apply; its simulated event count and simulator do not.
    assert sec["events"] is None and sec["kind"] == "trackml" and sec["reduce"]["n_particles"] == [10, 50]
    assert "trackml" not in sec and "redvid" not in sec
    assert dataset_section("mine", {"source": {"format": "redvid", "path": "a.csv"}, "events": 7})["kind"] == "redvid"
    assert dataset_section("mine", {"source": {"format": "acts", "path": "d"}})["kind"] == "trackml"
    hep = dataset_section("mine", {"source": {"format": "hepmc", "path": "a.hepmc"}, "trackml": {"volumes": [7]}})
    assert hep["trackml"]["volumes"] == [7] and "bz" in hep["trackml"]
    with pytest.raises(ConfigError, match=r"datasets\.mine\.trackml: .*not simulated"):
        dataset_section("mine", {"source": {"format": "trackml", "path": "d"}, "trackml": {"volumes": [7]}})
    with pytest.raises(ConfigError, match=r"source\.path is required"):
        dataset_section("mine", {"source": {"format": "trackml"}})
    with pytest.raises(ConfigError, match=r"unknown key datasets\.mine\.source\.pth"):
        dataset_section("mine", {"source": {"format": "trackml", "pth": "d"}})
    with pytest.raises(ConfigError, match="format 'csv'"):
        dataset_section("mine", {"source": {"format": "csv", "path": "d"}})
    with pytest.raises(ConfigError, match="events must be >= 1"):
        dataset_section("mine", {"kind": "redvid", "events": None})


def test_sharded_ingest_reads_only_its_events_and_merges(tmp_path, trackml_dir, monkeypatch):
    _trackml_zip(tmp_path / "data" / "train_1.zip", trackml_dir, [1, 2])
    _trackml_zip(tmp_path / "data" / "train_2.zip", trackml_dir, [5, 6, 8])
    monkeypatch.chdir(tmp_path)  # relative paths are relative to the working directory
    section = {"source": {"format": "trackml", "path": "data/train_*.zip"}, "events": 4, "split": [2, 1, 1],
               "reduce": {"n_particles": [5, 10], "repeats": 2}, "shards": 3, "seed": 4}
    reads, unzipped = [], []
    original, unzip = MultiSource.read_event, zipfile.ZipFile.read
    monkeypatch.setattr(MultiSource, "read_event", lambda self, e, **kw: reads.append(e) or original(self, e, **kw))
    monkeypatch.setattr(zipfile.ZipFile, "read", lambda self, name, *a: unzipped.append(name) or unzip(self, name, *a))
    for i in range(3):
        reads.clear()
        unzipped.clear()
        build_dataset("real", section, tmp_path / f"s{i}", shard=(i, 3), plots=False)
        mine = [[1], [2], [5, 6]][i]  # contiguous thirds of the first 4 events
        assert reads == mine
        # Listing the events of every zip decompresses nothing: the job unzips only its own events' files.
        assert sorted(unzipped) == sorted(f"train/event{e:09d}-{p}.csv.gz" for e in mine for p in PARTS)
    merged = merge_dataset([tmp_path / f"s{i}" for i in range(3)], tmp_path / "merged", name="real", plots=False)
    full = build_dataset("real", section, tmp_path / "full", plots=False)
    assert merged["source_ids"] == full["source_ids"] and sorted(sum(full["source_ids"].values(), [])) == [1, 2, 5, 6]
    info = json.loads((tmp_path / "merged" / "dataset.json").read_text())
    assert info["source"] == "data/train_*.zip" and info["source_format"] == "trackml"
    assert info["source_files"] == ["data/train_1.zip", "data/train_2.zip"] and info["source_events"] == 4
    for split in ("train", "val", "test"):
        st = EventStore(tmp_path / "merged" / split)
        assert sorted({e // 2 for e in st.event_ids}) == info["source_ids"][split]
        pd.testing.assert_frame_equal(st.hits(), EventStore(tmp_path / "full" / split).hits())
    build_dataset("real", dict(section, events=3), tmp_path / "o2", shard=(2, 3), plots=False)
    with pytest.raises(DataError, match="different sources"):
        merge_dataset([tmp_path / "s0", tmp_path / "s1", tmp_path / "o2"], tmp_path / "bad", plots=False)


def _paper_examples() -> dict:
    """The commented-out `source` entries of config/paper.yaml, uncommented."""
    lines, keep = [], False
    for line in (ROOT / "config" / "paper.yaml").read_text().splitlines():
        if re.match(r"^  # [a-z0-9-]+:$", line):
            keep = True
        elif not line.startswith("  #   "):
            keep = False
        if keep:
            lines.append("  " + line[4:])
    return yaml.safe_load("datasets:\n" + "\n".join(lines))["datasets"]


def test_paper_examples_are_valid(tmp_path):
    examples = _paper_examples()
    assert {"trackml-10-50", "trackml-200-500", "hllhc-pixel", "redvid-linear-10-50-zenodo",
            "trackml-10-50-zenodo"} <= set(examples)
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    cfg = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    cfg["datasets"].update(examples)
    jsonschema.validate(cfg, schema)
    for name, section in examples.items():
        assert section["source"]["path"].startswith("../data/")
        # models_from decides where the models come from, not the events: the workflow keeps it out.
        sec = dataset_section(name, {k: v for k, v in section.items() if k != "models_from"})
        assert sec["kind"] == ("redvid" if name.startswith("redvid") else "trackml")
    assert dataset_section("hllhc-pixel", examples["hllhc-pixel"])["reduce"]["n_particles"] is None
    bad = dict(cfg, datasets={"x": {"source": {"format": "trackml"}}})
    with pytest.raises(jsonschema.ValidationError, match="'path' is a required property"):
        jsonschema.validate(bad, schema)
