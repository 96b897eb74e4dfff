"""Every kind of bad input stops `trackpipe ingest` with exit 2 and one message naming file, event, column."""

import gzip
import shutil

import pandas as pd
import pytest

from trackpipe.cli import main

PARTS = ("hits", "cells", "particles", "truth")


@pytest.fixture
def event_dir(tmp_path, trackml_dir):
    """A writable, uncompressed copy of the real event (event 1)."""
    d = tmp_path / "in"
    d.mkdir()
    for part in PARTS:
        (d / f"event000000001-{part}.csv").write_bytes(gzip.decompress((trackml_dir / f"event000000001-{part}.csv.gz").read_bytes()))
    return d


def _edit(d, part, fn, event=1):
    path = d / f"event{event:09d}-{part}.csv"
    df = pd.read_csv(path)
    fn(df).to_csv(path, index=False)


def _ingest(d, tmp_path, capsys, *extra):
    out = tmp_path / "store"
    code = main(["ingest", "--format", "trackml", str(d), "--out", str(out), *extra])
    return code, capsys.readouterr(), out


def _drop_x(df):
    return df.drop(columns=["x"])


def _text_volume(df):
    df["volume_id"] = df["volume_id"].astype(object)
    df.loc[3, "volume_id"] = "pixel"
    return df


def _nan_y(df):
    df.loc[10, "y"] = float("nan")
    return df


def _inf_z(df):
    df.loc[11, "z"] = float("inf")
    return df


def _dup_hit(df):
    df.loc[5, "hit_id"] = df.loc[4, "hit_id"]
    return df


def _orphan_truth(df):
    df.loc[0, "hit_id"] = 999_999_999
    return df


def _bad_nhits(df):
    df.loc[df.nhits > 0, "nhits"] += 1
    return df


def _empty(df):
    return df.iloc[:0]


def _fractional_pid(df):
    df["particle_id"] = df["particle_id"].astype(float)
    df.loc[1, "particle_id"] = 1.5
    return df


CASES = [
    ("hits", _drop_x, "hits", "'x'", "missing required column"),
    ("hits", _text_volume, "hits", "'volume_id'", "non-numeric value 'pixel'"),
    ("hits", _nan_y, "hits", "'y'", "NaN/inf"),
    ("hits", _inf_z, "hits", "'z'", "NaN/inf"),
    ("hits", _dup_hit, "hits", "'hit_id'", "duplicated"),
    ("truth", _orphan_truth, "truth", "'hit_id'", "not in hits"),
    ("particles", _bad_nhits, "particles", "'nhits'", "nhits disagrees"),
    ("hits", _empty, "hits", "'hit_id'", "no hits"),
    ("truth", _fractional_pid, "truth", "'particle_id'", "fractional"),
]


@pytest.mark.parametrize("part,edit,file_part,column,reason", CASES, ids=[c[1].__name__ for c in CASES])
def test_bad_input_rejected_with_clear_message(event_dir, tmp_path, capsys, part, edit, file_part, column, reason):
    _edit(event_dir, part, edit)
    code, io, out = _ingest(event_dir, tmp_path, capsys)
    assert code == 2
    lines = [l for l in io.err.strip().splitlines() if l.startswith("trackpipe ingest: error:")]
    assert len(lines) == 1, io.err
    msg = lines[0]
    assert f"event000000001-{file_part}.csv" in msg and "event 1" in msg and column in msg and reason in msg, msg
    assert not out.exists(), "nothing may be written for a rejected event"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".store")] == []


def test_truncated_gzip(tmp_path, trackml_dir, capsys):
    d = tmp_path / "in"
    shutil.copytree(trackml_dir, d)
    data = (d / "event000000001-hits.csv.gz").read_bytes()
    (d / "event000000001-hits.csv.gz").write_bytes(data[: len(data) // 2])
    code, io, out = _ingest(d, tmp_path, capsys)
    assert code == 2
    assert "event000000001-hits.csv.gz" in io.err and "event 1" in io.err and "truncated" in io.err
    assert not out.exists()


def test_skip_bad_lists_skipped_events(event_dir, tmp_path, capsys):
    for part in PARTS:  # event 2 is a good copy of event 1
        shutil.copy(event_dir / f"event000000001-{part}.csv", event_dir / f"event000000002-{part}.csv")
    _edit(event_dir, "hits", _nan_y, event=1)
    code, io, out = _ingest(event_dir, tmp_path, capsys)
    assert code == 2 and not out.exists()
    code, io, out = _ingest(event_dir, tmp_path, capsys, "--skip-bad")
    assert code == 0
    assert "skipped event 1:" in io.out and "'y'" in io.out
    from trackpipe.io.store import EventStore

    store = EventStore(out)
    assert list(store.event_ids) == [2]
    assert [s["event_id"] for s in store.manifest["skipped_events"]] == [1]


def test_existing_store_not_overwritten(event_dir, tmp_path, capsys):
    assert _ingest(event_dir, tmp_path, capsys)[0] == 0
    code, io, _ = _ingest(event_dir, tmp_path, capsys)
    assert code == 2 and "refusing to overwrite" in io.err
    assert _ingest(event_dir, tmp_path, capsys, "--overwrite")[0] == 0
