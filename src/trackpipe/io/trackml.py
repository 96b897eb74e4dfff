"""TrackML CSV events (`event<9 digits>-{hits,cells,particles,truth}.csv[.gz]`) in a directory or zip.

Reading converts one event into the store's `Event` (hits joined with truth); writing produces files
that the official trackml-library loader (`pandas.read_csv(f, header=0, index_col=False, dtype=...)`)
reads with identical values.

Events without truth (the Kaggle test set: hits and cells only) are read too: a source whose events
have neither truth nor particles files has `has_truth` False, its events have hits without the truth
columns and an empty particles table, and writing such an event writes hits (and cells) only. A
source mixing events with and without truth files is an error.
"""

from __future__ import annotations

import functools
import gzip
import io
import re
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError
from .atomic import atomic_path
from .store import Event, empty_particles
from .validate import _cast, check_event, check_unique, hits_have_truth, require_columns

# dtype tables of the TrackML release (as in trackml-library's dataset.py).
DTYPES = {
    "hits": {"hit_id": "int32", "x": "float32", "y": "float32", "z": "float32", "volume_id": "int32",
             "layer_id": "int32", "module_id": "int32"},
    "cells": {"hit_id": "int32", "ch0": "int32", "ch1": "int32", "value": "float32"},
    "particles": {"particle_id": "int64", "particle_type": "int32", "vx": "float32", "vy": "float32",
                  "vz": "float32", "px": "float32", "py": "float32", "pz": "float32", "q": "int32", "nhits": "int32"},
    "truth": {"hit_id": "int32", "particle_id": "int64", "tx": "float32", "ty": "float32", "tz": "float32",
              "tpx": "float32", "tpy": "float32", "tpz": "float32", "weight": "float32"},
}
OPTIONAL = {"particles": {"particle_type"}}
PARTS = ("hits", "cells", "particles", "truth")
_FILE_RE = re.compile(r"(?:^|.*/)event(\d{9})-([a-z]+)\.csv(\.gz)?$")


class TrackMLSource:
    """A directory or zip file holding TrackML event files."""

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.exists():
            raise DataError("no such file or directory", file=self.path)
        self._zip = None
        if self.path.is_dir():
            names = [p.name for p in self.path.iterdir()]
        elif zipfile.is_zipfile(self.path):
            self._zip = zipfile.ZipFile(self.path)
            names = self._zip.namelist()
        else:
            raise DataError("expected a directory or a zip file of TrackML events", file=self.path)
        self._files: dict[int, dict[str, str]] = {}
        for name in names:
            m = _FILE_RE.match(name)
            if m:
                parts = self._files.setdefault(int(m.group(1)), {})
                if m.group(2) in parts:
                    raise DataError(f"two files for part {m.group(2)!r}: {parts[m.group(2)]} and {name}",
                                    file=self.path, event=int(m.group(1)))
                parts[m.group(2)] = name
        if not self._files:
            raise DataError("no TrackML event files (event<9 digits>-<part>.csv[.gz]) found", file=self.path)

    @property
    def event_ids(self) -> list[int]:
        return sorted(self._files)

    def file_of(self, event_id: int, part: str) -> str:
        try:
            return self._files[event_id][part]
        except KeyError:
            raise DataError(f"missing {part} file", file=self.path / f"event{event_id:09d}-{part}.csv[.gz]",
                            event=event_id) from None

    def has_part(self, event_id: int, part: str) -> bool:
        return part in self._files.get(event_id, {})

    @functools.cached_property
    def has_truth(self) -> bool:
        """False when no event has truth or particles files (e.g. Kaggle test events); DataError naming
        an event of each kind when some events have them and others not."""
        truthless = [e for e, parts in sorted(self._files.items()) if not {"truth", "particles"} & set(parts)]
        if truthless and len(truthless) < len(self._files):
            with_truth = next(e for e in sorted(self._files) if e not in set(truthless))
            raise DataError(f"event {truthless[0]} has neither truth nor particles file but event {with_truth} has "
                            f"them ({len(truthless)} of {len(self._files)} events without truth): events with and "
                            f"without truth are not mixed in one store; ingest them separately",
                            file=self.path / f"event{truthless[0]:09d}-truth.csv[.gz]", event=truthless[0])
        return not truthless

    def read_part(self, event_id: int, part: str) -> pd.DataFrame:
        """One part of one event, checked: columns present, exact dtypes, finite values, unique ids."""
        name = self.file_of(event_id, part)
        where = self.path / name if self._zip is None else f"{self.path}:{name}"
        try:
            raw = self._zip.read(name) if self._zip is not None else (self.path / name).read_bytes()
            if name.endswith(".gz"):
                raw = gzip.decompress(raw)
            df = pd.read_csv(io.BytesIO(raw), header=0, index_col=False)
        except (EOFError, OSError, zlib.error, zipfile.BadZipFile) as e:
            raise DataError(f"cannot read compressed data (truncated or corrupt?): {e}", file=where,
                            event=event_id) from None
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
            raise DataError(f"not a valid CSV file: {e}", file=where, event=event_id) from None
        dtypes = DTYPES[part]
        required = [c for c in dtypes if c not in OPTIONAL.get(part, ())]
        require_columns(df, required, file=where, event=event_id)
        return _cast_part(df, dtypes, file=where, event=event_id)

    def read_event(self, event_id: int, *, with_cells: bool = True) -> Event:
        """Convert one event to the store's form: hits joined with truth, particles, cells.

        Without truth (`has_truth` False): hits alone, an empty particles table, cells."""
        if not self.has_truth:
            return self._read_truthless_event(event_id, with_cells=with_cells)
        hits = self.read_part(event_id, "hits")
        truth = self.read_part(event_id, "truth")
        particles = self.read_part(event_id, "particles")
        hits_file, truth_file = self._where(event_id, "hits"), self._where(event_id, "truth")
        particles_file = self._where(event_id, "particles")
        if len(hits) == 0:
            raise DataError("event has no hits", file=hits_file, event=event_id, column="hit_id")
        check_unique(hits, ["hit_id"], file=hits_file, event=event_id)
        check_unique(truth, ["hit_id"], file=truth_file, event=event_id)
        orphan = ~truth.hit_id.isin(hits.hit_id)
        if orphan.any():
            raise DataError(f"{int(orphan.sum())} truth row(s) whose hit_id is not in hits (first: "
                            f"{int(truth.hit_id[orphan].iloc[0])})", file=truth_file, event=event_id, column="hit_id")
        untruthed = ~hits.hit_id.isin(truth.hit_id)
        if untruthed.any():
            raise DataError(f"{int(untruthed.sum())} hit(s) without a truth row (first: "
                            f"{int(hits.hit_id[untruthed].iloc[0])})", file=truth_file, event=event_id, column="hit_id")
        merged = hits.merge(truth, on="hit_id", how="left", validate="one_to_one")
        merged = merged.astype({c: "int64" for c in ("hit_id", "particle_id")})
        return self._event(event_id, merged, particles.copy(), truth_file, particles_file, with_cells)

    def _read_truthless_event(self, event_id: int, *, with_cells: bool) -> Event:
        hits = self.read_part(event_id, "hits").astype({"hit_id": "int64"})
        hits_file = self._where(event_id, "hits")
        return self._event(event_id, hits, empty_particles().drop(columns="event_id"), hits_file, None, with_cells)

    def _event(self, event_id, hits, particles, hits_file, particles_file, with_cells) -> Event:
        cells = None
        if with_cells and self.has_part(event_id, "cells"):
            cells = self.read_part(event_id, "cells").astype({"hit_id": "int64"})
        check_event(hits, particles, event=event_id, hits_file=hits_file, particles_file=particles_file,
                    cells=cells, cells_file=self._where(event_id, "cells") if cells is not None else None)
        return Event(event_id, hits.assign(event_id=np.int64(event_id)), particles.assign(event_id=np.int64(event_id)),
                     None if cells is None else cells.assign(event_id=np.int64(event_id)))

    def _where(self, event_id, part):
        name = self.file_of(event_id, part)
        return self.path / name if self._zip is None else f"{self.path}:{name}"


def _cast_part(df: pd.DataFrame, dtypes: dict, *, file, event) -> pd.DataFrame:
    out = {}
    for col, dt in dtypes.items():
        if col in df.columns:
            out[col] = _cast(df[col], np.dtype(dt), file=file, event=event, column=col)
    for col in dtypes:
        if col in out and np.dtype(dtypes[col]).kind == "f":
            bad = ~np.isfinite(out[col])
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise DataError(f"{int(bad.sum())} NaN/inf value(s), first in row {i}", file=file, event=event,
                                column=col)
    return pd.DataFrame(out)


def event_to_trackml_parts(event: Event) -> dict[str, pd.DataFrame]:
    """The four TrackML tables of one store event, with the release's dtypes; an event without truth
    (hits without particle_id) gives hits and cells only, like the Kaggle test set."""
    h = event.hits
    for col in ("hit_id",):
        if h[col].max() > np.iinfo(np.int32).max or h[col].min() < 0:
            raise DataError("hit ids do not fit TrackML's int32", event=event.event_id, column=col)
    hits = pd.DataFrame({c: h[c] for c in DTYPES["hits"]}).astype(DTYPES["hits"])
    cells = None if event.cells is None else event.cells[list(DTYPES["cells"])].astype(DTYPES["cells"])
    if not hits_have_truth(h, file="<store>", event=event.event_id):
        return {"hits": hits} | ({} if cells is None else {"cells": cells})
    truth_src = {c: (h[c] if c in h.columns else None) for c in DTYPES["truth"]}
    # Simulations without a true position fall back to the measured one and zero momentum (documented).
    for t, m in (("tx", "x"), ("ty", "y"), ("tz", "z")):
        if truth_src[t] is None:
            truth_src[t] = h[m]
    for t in ("tpx", "tpy", "tpz"):
        if truth_src[t] is None:
            truth_src[t] = np.zeros(len(h), np.float32)
    truth = pd.DataFrame(truth_src).astype(DTYPES["truth"])
    p = event.particles
    cols = [c for c in DTYPES["particles"] if c in p.columns]
    particles = pd.DataFrame({c: p[c] for c in cols}).astype({c: DTYPES["particles"][c] for c in cols})
    parts = {"hits": hits, "truth": truth, "particles": particles}
    if cells is not None:
        parts["cells"] = cells
    return parts


def write_trackml_event(outdir, event: Event, *, compress: bool = False) -> list[Path]:
    """Write one event as TrackML CSV files; each file appears atomically."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    for part, df in event_to_trackml_parts(event).items():
        path = outdir / f"event{event.event_id:09d}-{part}.csv{'.gz' if compress else ''}"
        with atomic_path(path) as tmp:
            # Shortest round-trip repr of each float32 (numpy's default) keeps values identical on reload.
            text = df.to_csv(index=False)
            tmp.write_bytes(gzip.compress(text.encode(), mtime=0) if compress else text.encode())
        written.append(path)
    return written
