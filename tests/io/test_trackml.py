import gzip
import shutil

import numpy as np
import pandas as pd
import pytest

from trackpipe.cli import main
from trackpipe.io.store import EventStore
from trackpipe.io.trackml import TrackMLSource, write_trackml_event

# The official trackml-library loader (not on PyPI) reads each part exactly like this:
# pandas.read_csv(file, header=0, index_col=False, dtype=DTYPES[part]) with these dtype tables.
OFFICIAL_DTYPES = {
    "hits": {"hit_id": "i4", "x": "f4", "y": "f4", "z": "f4", "volume_id": "i4", "layer_id": "i4", "module_id": "i4"},
    "cells": {"hit_id": "i4", "ch0": "i4", "ch1": "i4", "value": "f4"},
    "particles": {"particle_id": "i8", "particle_type": "i4", "vx": "f4", "vy": "f4", "vz": "f4", "px": "f4",
                  "py": "f4", "pz": "f4", "q": "i4", "nhits": "i4"},
    "truth": {"hit_id": "i4", "particle_id": "i8", "tx": "f4", "ty": "f4", "tz": "f4", "tpx": "f4", "tpy": "f4",
              "tpz": "f4", "weight": "f4"},
}


def official_load(prefix, part):
    (path,) = list(prefix.parent.glob(f"{prefix.name}-{part}.csv*"))
    return pd.read_csv(path, header=0, index_col=False, dtype=OFFICIAL_DTYPES[part])


def test_cli_ingest_info_counts(tmp_path, trackml_dir, capsys):
    out = tmp_path / "store"
    assert main(["ingest", "--format", "trackml", str(trackml_dir), "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["info", str(out), "--json"]) == 0
    import json

    info = json.loads(capsys.readouterr().out)
    assert (info["n_events"], info["n_hits"], info["n_particles"]) == (1, 5527, 548)
    assert set(info["volumes"]) == {"7", "8", "9", "12", "13", "14", "16", "17", "18"}


def test_store_dtypes_and_particle_ids_int64(trackml_event):
    h, p = trackml_event.hits, trackml_event.particles
    assert h.particle_id.dtype == np.int64 and p.particle_id.dtype == np.int64
    # Ids above 2**24 exist in this event: float32 would have merged them.
    assert (p.particle_id > 2**24).any()
    assert p.particle_id.nunique() == 548
    assert int((h.particle_id == 0).sum()) == 829  # noise hits
    assert int((p.nhits == 0).sum()) == 80


@pytest.mark.parametrize("compress", [False, True])
def test_round_trip_official_loader_identical(tmp_path, trackml_dir, compress):
    store_dir = tmp_path / "store"
    assert main(["ingest", "--format", "trackml", str(trackml_dir), "--out", str(store_dir)]) == 0
    out = tmp_path / "csv"
    write_trackml_event(out, EventStore(store_dir).read_event(1), compress=compress)
    for part in ("hits", "cells", "particles", "truth"):
        original = official_load(trackml_dir / "event000000001", part)
        again = official_load(out / "event000000001", part)
        key = {"hits": ["hit_id"], "truth": ["hit_id"], "particles": ["particle_id"],
               "cells": ["hit_id", "ch0", "ch1"]}[part]
        a = original.sort_values(key).reset_index(drop=True)
        b = again.sort_values(key).reset_index(drop=True)
        pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_zip_source(tmp_path, trackml_dir):
    import zipfile

    z = tmp_path / "events.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for part in ("hits", "cells", "particles", "truth"):
            data = gzip.decompress((trackml_dir / f"event000000001-{part}.csv.gz").read_bytes())
            zf.writestr(f"train_sample/event000000001-{part}.csv", data)
    ev = TrackMLSource(z).read_event(1)
    assert len(ev.hits) == 5527 and len(ev.particles) == 548


def test_random_access_many_events(tmp_path, trackml_event):
    from trackpipe.io.store import Event, write_store

    events = []
    for eid in range(10, 40):
        h = trackml_event.hits.copy()
        h["x"] = h["x"] + eid  # make events distinguishable
        events.append(Event(eid, h, trackml_event.particles.copy()))
    write_store(tmp_path / "s", events, row_group_rows=20_000)
    store = EventStore(tmp_path / "s")
    assert len(store) == 30
    for eid in (39, 10, 25):
        ev = store.read_event(eid)
        expect = trackml_event.hits.sort_values("hit_id").x.to_numpy() + eid
        np.testing.assert_allclose(ev.hits.x.to_numpy(), expect.astype(np.float32), rtol=0, atol=1e-3)
        assert (ev.hits.event_id == eid).all() and len(ev.particles) == 548
    assert pd.read_parquet(tmp_path / "s" / "hits.parquet").event_id.nunique() == 30


def test_store_refuses_overwrite_and_is_atomic(tmp_path, trackml_event):
    from trackpipe.io.store import StoreWriter, write_store

    path = tmp_path / "s"
    write_store(path, [trackml_event])
    with pytest.raises(FileExistsError):
        write_store(path, [trackml_event])
    # A writer that fails half-way leaves the old store untouched and no temporary files.
    with pytest.raises(RuntimeError):
        with StoreWriter(path, overwrite=True) as w:
            w.add_event(trackml_event)
            raise RuntimeError("killed")
    assert EventStore(path).read_event(1).hits.shape[0] == 5527
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]


def test_same_input_gives_byte_identical_store(tmp_path, trackml_dir):
    for name in ("a", "b"):
        assert main(["ingest", "--format", "trackml", str(trackml_dir), "--out", str(tmp_path / name)]) == 0
    for f in ("hits.parquet", "particles.parquet", "cells.parquet", "index.parquet"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
