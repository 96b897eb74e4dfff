"""The canonical event store: Parquet tables plus an index for fast access to one event.

Layout of a store directory::

    manifest.json      format, schema version, source, seed, config, counts, optional columns, truth
    hits.parquet       all hits, events in index order, hits sorted by hit_id; no event spans row groups
    particles.parquet  all particles, same rule
    cells.parquet      optional (TrackML cells)
    index.parquet      event_id -> (row group, offset, count) per table

A store either has truth (manifest ``"truth": true``; stores written before the key existed read as
true) or none (``"truth": false``, e.g. TrackML Kaggle test events with hits and cells only): then the
hits have no `schema.TRUTH_COLUMNS` (particle_id, weight) and the particles table has its required
columns but no rows. Such a store can be predicted and exported, not scored or trained on
(`EventStore.require_truth`).

Reading one event reads one row group per table (cached), so random access costs one row-group read
whatever the size of the store. The whole store is written to a temporary directory and renamed into
place on success: an interrupted writer leaves nothing that looks like a store.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import DataError
from ..schema import CELLS, HITS, PARTICLES, SCHEMA_VERSION, TRUTH_COLUMNS, Table
from .atomic import atomic_path
from .validate import check_event, coerce_table, hits_have_truth

STORE_FORMAT = "trackpipe-event-store"
_TABLES = (HITS, PARTICLES, CELLS)


@dataclass
class Event:
    event_id: int
    hits: pd.DataFrame
    particles: pd.DataFrame
    cells: pd.DataFrame | None = None


def empty_particles() -> pd.DataFrame:
    """The particles table of an event without truth: the required columns (event_id included), no rows."""
    return pd.DataFrame({c: pd.Series(dtype=PARTICLES.dtypes[c]) for c in PARTICLES.required})


class StoreWriter:
    """Write events one at a time; the store appears only when `close()` succeeds.

    Use as a context manager. Events must have distinct ids; the optional columns of the first event
    fix the store's columns, and every later event must have the same ones. The first event also
    fixes whether the store has truth (manifest ``truth``): events with and without truth columns
    are never mixed in one store.
    """

    def __init__(self, path, *, metadata: dict | None = None, overwrite: bool = False,
                 row_group_rows: int = 262_144, validate: bool = True):
        self.path = Path(path)
        self.metadata = dict(metadata or {})
        self.row_group_rows = int(row_group_rows)
        self.validate = validate
        self._ctx = atomic_path(self.path, overwrite=overwrite, is_dir=True)
        self._dir = self._ctx.__enter__()
        self._writers: dict[str, pq.ParquetWriter] = {}
        self._columns: dict[str, list[str]] = {}
        self._buffers: dict[str, list[pd.DataFrame]] = {t.name: [] for t in _TABLES}
        self._buffer_rows = {t.name: 0 for t in _TABLES}
        self._row_group = {t.name: 0 for t in _TABLES}
        self._index: list[dict] = []
        self._seen: set[int] = set()
        self._has_cells: bool | None = None
        self._truth: bool | None = None
        self._closed = False

    def add_event(self, event: Event) -> None:
        eid = int(event.event_id)
        if eid in self._seen:
            raise DataError("event id written twice to the same store", file=self.path, event=eid, column="event_id")
        hits = _with_event_id(event.hits, eid)
        particles = _with_event_id(event.particles, eid)
        cells = None if event.cells is None else _with_event_id(event.cells, eid)
        if self._has_cells is None:
            self._has_cells = cells is not None
        elif self._has_cells != (cells is not None):
            raise DataError("some events have cells and others not", file=self.path, event=eid, column="cells")
        truth = hits_have_truth(hits, file=self.path / "hits", event=eid)
        if self._truth is None:
            self._truth = truth
        elif self._truth != truth:
            raise DataError(f"event {'has' if truth else 'has no'} truth columns {list(TRUTH_COLUMNS)} but the "
                            f"store's earlier events {'do not' if truth else 'do'}: a store holds events with "
                            f"truth or events without, never both", file=self.path, event=eid, column="particle_id")
        if self.validate:
            check_event(hits, particles, event=eid, hits_file=self.path / "hits", particles_file=self.path / "particles",
                        cells=cells, cells_file=self.path / "cells")
        row = {"event_id": eid}
        for table, df in ((HITS, hits), (PARTICLES, particles), (CELLS, cells)):
            if df is None:
                continue
            sort = ["hit_id", "ch0", "ch1"] if table is CELLS else [table.key[-1]]
            df = df.sort_values(sort, kind="stable").reset_index(drop=True)
            self._check_columns(table, df, eid)
            name = table.name
            row[f"{name}_rg"] = self._row_group[name]
            row[f"{name}_offset"] = self._buffer_rows[name]
            row[f"n_{name}"] = len(df)
            self._buffers[name].append(df)
            self._buffer_rows[name] += len(df)
        self._index.append(row)
        self._seen.add(eid)
        # Flush all tables together so that an event's rows never straddle row groups.
        if self._buffer_rows["hits"] >= self.row_group_rows:
            self._flush()

    def _check_columns(self, table: Table, df: pd.DataFrame, eid: int) -> None:
        present = [c for c in table.names if c in df.columns]
        known = self._columns.setdefault(table.name, present)
        if present != known:
            raise DataError(f"columns {present} differ from the store's {known}", file=self.path / table.name,
                            event=eid, column=", ".join(sorted(set(present) ^ set(known))))

    def _flush(self) -> None:
        for table in _TABLES:
            name = table.name
            if not self._buffers[name]:
                continue
            df = pd.concat(self._buffers[name], ignore_index=True)
            schema = table.arrow_schema(self._columns[name])
            arrow = pa.Table.from_pandas(df[[f.name for f in schema]], schema=schema, preserve_index=False)
            if name not in self._writers:
                self._writers[name] = pq.ParquetWriter(self._dir / f"{name}.parquet", schema, compression="zstd")
            self._writers[name].write_table(arrow, row_group_size=max(len(df), 1))
            self._buffers[name] = []
            self._buffer_rows[name] = 0
            self._row_group[name] += 1

    def close(self) -> None:
        if self._closed:
            return
        if not self._index:
            self.abort()
            raise DataError("no events to write", file=self.path)
        self._flush()
        for w in self._writers.values():
            w.close()
        index = pd.DataFrame(self._index)
        if "n_cells" in index:
            index = index.astype({"cells_rg": "int64", "cells_offset": "int64", "n_cells": "int64"})
        index.to_parquet(self._dir / "index.parquet", index=False)
        manifest = {
            "format": STORE_FORMAT,
            "schema_version": SCHEMA_VERSION,
            "n_events": int(len(index)),
            "n_hits": int(index.n_hits.sum()),
            "n_particles": int(index.n_particles.sum()),
            "columns": self._columns,
            **self.metadata,
            "truth": bool(self._truth),  # what the events hold, whatever the metadata says
        }
        (self._dir / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")
        self._closed = True
        self._ctx.__exit__(None, None, None)

    def abort(self) -> None:
        if self._closed:
            return
        self._closed = True
        for w in self._writers.values():
            w.close()
        try:
            self._ctx.__exit__(RuntimeError, RuntimeError("aborted"), None)
        except RuntimeError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False


def _with_event_id(df: pd.DataFrame, eid: int) -> pd.DataFrame:
    df = df.copy()
    df["event_id"] = np.int64(eid)
    return df


class EventStore:
    """Read access to a store directory written by `StoreWriter`."""

    def __init__(self, path):
        self.path = Path(path)
        manifest = self.path / "manifest.json"
        if not manifest.is_file():
            raise DataError("not an event store (no manifest.json); create one with 'trackpipe ingest' or "
                            "'trackpipe simulate'", file=self.path)
        self.manifest = json.loads(manifest.read_text())
        if self.manifest.get("format") != STORE_FORMAT:
            raise DataError(f"manifest format is {self.manifest.get('format')!r}, expected {STORE_FORMAT!r}",
                            file=manifest)
        if self.manifest.get("schema_version") != SCHEMA_VERSION:
            raise DataError(f"store schema version {self.manifest.get('schema_version')} is not supported "
                            f"(this trackpipe reads version {SCHEMA_VERSION})", file=manifest)
        self.index = pd.read_parquet(self.path / "index.parquet").set_index("event_id", drop=False)
        self._files: dict[str, pq.ParquetFile] = {}
        self._cache: dict[str, tuple[int, pd.DataFrame]] = {}

    def __len__(self) -> int:
        return len(self.index)

    def __repr__(self) -> str:
        return f"EventStore({str(self.path)!r}, events={len(self)})"

    @property
    def event_ids(self) -> np.ndarray:
        return self.index.event_id.to_numpy()

    @property
    def has_cells(self) -> bool:
        return (self.path / "cells.parquet").is_file()

    @property
    def has_truth(self) -> bool:
        """False for a store of events without truth (manifest ``"truth": false``); older stores: True."""
        return bool(self.manifest.get("truth", True))

    def require_truth(self, what: str) -> None:
        """DataError naming the store when it has no truth and `what` (scoring, training, ...) needs it."""
        if not self.has_truth:
            raise DataError(f"{what} needs truth, but this event store has no truth (manifest \"truth\": false; "
                            f"its events came without truth and particles files): it can be predicted and "
                            f"exported as TrackML hits and cells, not scored or trained on", file=self.path)

    def _check_hit_columns(self, columns) -> None:
        missing = [c for c in columns if c not in self.manifest.get("columns", {}).get("hits", columns)]
        if missing:
            why = " (the store has no truth)" if not self.has_truth and set(missing) & set(TRUTH_COLUMNS) else ""
            raise DataError(f"hits have no column(s) {missing}{why}", file=self.path / "hits.parquet",
                            column=", ".join(missing))

    def _file(self, name: str) -> pq.ParquetFile:
        if name not in self._files:
            self._files[name] = pq.ParquetFile(self.path / f"{name}.parquet")
        return self._files[name]

    def _rows(self, name: str, rg: int, offset: int, n: int, columns=None) -> pd.DataFrame:
        cached = self._cache.get(name)
        if cached is None or cached[0] != rg:
            cached = (rg, self._file(name).read_row_group(int(rg)).to_pandas())
            self._cache[name] = cached
        df = cached[1].iloc[int(offset):int(offset) + int(n)]
        if columns is not None:
            df = df[list(columns)]
        return df.reset_index(drop=True)

    def read_event(self, event_id: int, *, columns=None) -> Event:
        """One event; `columns` restricts the hits columns returned."""
        if columns is not None:
            self._check_hit_columns(columns)
        try:
            row = self.index.loc[int(event_id)]
        except KeyError:
            raise DataError(f"no such event in the store ({len(self)} events, ids {self.event_ids.min()}.."
                            f"{self.event_ids.max()})", file=self.path, event=event_id) from None
        hits = self._rows("hits", row.hits_rg, row.hits_offset, row.n_hits, columns)
        particles = self._rows("particles", row.particles_rg, row.particles_offset, row.n_particles)
        cells = None
        if self.has_cells:
            cells = self._rows("cells", row.cells_rg, row.cells_offset, row.n_cells)
        return Event(int(event_id), hits, particles, cells)

    def iter_events(self, event_ids=None):
        for eid in self.event_ids if event_ids is None else event_ids:
            yield self.read_event(eid)

    def hits(self, columns=None) -> pd.DataFrame:
        """All hits of the store as one table (for small stores and vectorised metrics)."""
        if columns is not None:
            self._check_hit_columns(columns)
        return pd.read_parquet(self.path / "hits.parquet", columns=columns)

    def particles(self, columns=None) -> pd.DataFrame:
        return pd.read_parquet(self.path / "particles.parquet", columns=columns)

    def info(self) -> dict:
        hits = self.hits(columns=["volume_id"])
        volumes = hits.volume_id.value_counts().sort_index()
        return {
            "path": str(self.path),
            "n_events": int(len(self)),
            "n_hits": int(self.index.n_hits.sum()),
            "n_particles": int(self.index.n_particles.sum()),
            "hits_per_event": {"min": int(self.index.n_hits.min()), "median": float(self.index.n_hits.median()),
                               "max": int(self.index.n_hits.max())},
            "volumes": {int(k): int(v) for k, v in volumes.items()},
            "has_cells": self.has_cells,
            "truth": self.has_truth,
            "source": self.manifest.get("source"),
            "columns": self.manifest.get("columns"),
        }


def write_store(path, events, *, metadata=None, overwrite=False, **kwargs) -> Path:
    """Write an iterable of `Event`s to a new store; returns its path."""
    with StoreWriter(path, metadata=metadata, overwrite=overwrite, **kwargs) as w:
        for ev in events:
            w.add_event(ev)
    return Path(path)


def normalise_event(hits, particles, cells=None, *, event_id, file="<memory>") -> Event:
    """Cast in-memory tables to the schema (used by simulators and converters, which always have truth)."""
    h = coerce_table(hits.assign(event_id=event_id), HITS, file=file, event=event_id,
                     required=HITS.required + list(TRUTH_COLUMNS))
    p = coerce_table(particles.assign(event_id=event_id), PARTICLES, file=file, event=event_id)
    c = None if cells is None else coerce_table(cells.assign(event_id=event_id), CELLS, file=file, event=event_id)
    return Event(int(event_id), h, p, c)


def merge_stores(paths, out, *, metadata=None, overwrite=False) -> Path:
    """Concatenate stores with distinct event ids into a new store, events in increasing id order.

    Used to join the shards of a dataset; the manifest keeps the first store's extra metadata
    (source, seed, config), updated by `metadata`, and the stores' truth flag: stores with truth and
    truth-less ones are never merged.
    """
    stores = [EventStore(p) for p in paths]
    if not stores:
        raise DataError("no stores to merge", file=out)
    mixed = [s for s in stores if s.has_truth != stores[0].has_truth]
    if mixed:
        with_truth, without = (stores[0], mixed[0]) if stores[0].has_truth else (mixed[0], stores[0])
        raise DataError(f"cannot merge a store without truth with one that has truth ({with_truth.path})",
                        file=without.path)
    order = sorted((int(eid), i) for i, s in enumerate(stores) for eid in s.event_ids)
    dup = [a for a, b in zip(order, order[1:]) if a[0] == b[0]]
    if dup:
        raise DataError(f"event {dup[0][0]} is in more than one store", file=stores[dup[0][1]].path, event=dup[0][0])
    standard = {"format", "schema_version", "n_events", "n_hits", "n_particles", "columns", "truth"}
    meta = {k: v for k, v in stores[0].manifest.items() if k not in standard}
    meta.update(metadata or {})
    return write_store(out, (stores[i].read_event(eid) for eid, i in order), metadata=meta, overwrite=overwrite)
