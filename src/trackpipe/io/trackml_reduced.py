"""Reduced-TrackML CSV files of the TrackFormers code (EncReg): many events in one comma-separated file.

One row per hit, 14 columns ``x, y, z, volume_id, vx, vy, vz, px, py, pz, q, particle_id, weight,
event_id`` (REFERENCE 6.3; TrackFormers ``EncReg/data_processing/trackml_data.py`` writes them with
``header=False``, while its loader ``load_trackml_data`` expects a header row). Both are accepted:
a first row whose fields are numbers is data (then exactly 14 fields in the order above); a first
row without any number is a header, which must name exactly these 14 columns (any order).

Mapping to the event store:

* hits: hit_id 1..n per event in file order; x, y, z, volume_id, particle_id and weight as in the
  file; layer_id and module_id are not in the format and are set to 0;
* particles: one per distinct non-zero particle_id, vertex, momentum and q from its rows (they must
  agree between the rows of a particle), nhits = its number of rows in this event (the reduced
  event's, not the original event's);
* particle_id 0 is noise: weight must be 0 and its particle columns are ignored (a left join with
  the particles table leaves them empty);
* weights are kept as written. A reduced event is a subset of a full TrackML event and keeps the
  full event's weights, so they sum to less than 1; the TrackML score divides by the weight of the
  truth it is given, so this changes nothing (REFERENCE 2.3). A sum above 1 (+1e-3) cannot come from
  TrackML weights and is an error, as are negative weights.

The file is read once and grouped by event_id; `read_event` only slices.
"""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError
from .store import Event
from .validate import _cast, check_event, group_by_event

log = logging.getLogger(__name__)
COLUMNS = ["x", "y", "z", "volume_id", "vx", "vy", "vz", "px", "py", "pz", "q", "particle_id", "weight", "event_id"]
PARTICLE_COLUMNS = ["vx", "vy", "vz", "px", "py", "pz", "q"]
WEIGHT_SUM_TOLERANCE = 1e-3


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _first_line(path: Path) -> str:
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    try:
        with (gzip.open(path, "rt") if gz else open(path)) as f:
            return f.readline().rstrip("\r\n")
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read the file: {e}", file=path) from None


def detect_header(path: Path) -> bool:
    """True if the first row is a header naming exactly `COLUMNS`; False if it is a 14-field data row.

    Anything else raises a DataError saying what was expected and what was found.
    """
    line = _first_line(path)
    if not line.strip():
        raise DataError("empty file (or empty first line)", file=path)
    fields = [f.strip().strip('"') for f in line.split(",")]
    if any(_is_number(f) for f in fields):  # a header has no numbers: this is a data row
        if len(fields) != len(COLUMNS):
            raise DataError(f"the first row has {len(fields)} fields; a header-less reduced-TrackML file has "
                            f"{len(COLUMNS)}: {COLUMNS}", file=path, event=None, column="line 1")
        # Empty fields are missing values, reported with their event when it is read.
        bad = [c for c, f in zip(COLUMNS, fields) if f and not _is_number(f)]
        if bad:
            raise DataError(f"the first row is data (no header) but has non-numeric value(s) in {bad}", file=path,
                            column=", ".join(bad))
        return False
    missing = [c for c in COLUMNS if c not in fields]
    unexpected = [f for f in fields if f not in COLUMNS]
    if missing or unexpected or len(fields) != len(COLUMNS):
        raise DataError(f"header columns {fields} are not the reduced-TrackML columns {COLUMNS} "
                        f"(missing {missing}, unexpected {unexpected})", file=path,
                        column=", ".join(missing + unexpected) or "header")
    return True


class TrackMLReducedSource:
    """All events of one reduced-TrackML CSV file."""

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError("no such reduced-TrackML CSV file", file=self.path)
        self.has_header = detect_header(self.path)
        try:
            # particle_id as text: TrackML ids exceed float64's exact integers (2**53).
            df = pd.read_csv(self.path, header=0 if self.has_header else None,
                             names=None if self.has_header else COLUMNS, dtype={"particle_id": str},
                             skipinitialspace=True)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, EOFError, OSError) as e:
            raise DataError(f"not a valid {len(COLUMNS)}-column reduced-TrackML CSV file: {e}", file=self.path) from None
        df.columns = [str(c).strip() for c in df.columns]
        first_data_line = 2 if self.has_header else 1
        short = df[COLUMNS[-1]].isna().to_numpy()
        if short.any():
            i = int(np.flatnonzero(short)[0])
            raise DataError(f"{int(short.sum())} row(s) without an event_id, first on line {i + first_data_line} "
                            f"(a row with fewer than {len(COLUMNS)} fields, or an empty field)", file=self.path,
                            column="event_id")
        self._groups = group_by_event(df, file=self.path)
        self._df = df

    @property
    def event_ids(self) -> list[int]:
        return list(self._groups)

    def read_event(self, event_id: int) -> Event:
        if event_id not in self._groups:
            raise DataError("no such event in the file", file=self.path, event=event_id, column="event_id")
        rows = self._df.iloc[self._groups[event_id]]
        f, ev = self.path, int(event_id)
        hit_cols = {}
        for c, dt in (("x", "float32"), ("y", "float32"), ("z", "float32"), ("weight", "float32"),
                      ("volume_id", "int32"), ("particle_id", "int64")):
            hit_cols[c] = _cast(rows[c], np.dtype("float64" if dt == "float32" else dt), file=f, event=ev, column=c)
            if dt == "float32":
                _require_finite(hit_cols[c], f, ev, c)
        pid, w = hit_cols["particle_id"], hit_cols["weight"]
        _check_weights(pid, w, f, ev)
        n = len(rows)
        hits = pd.DataFrame({
            "event_id": np.int64(ev),
            "hit_id": np.arange(1, n + 1, dtype=np.int64),
            "x": hit_cols["x"].astype(np.float32), "y": hit_cols["y"].astype(np.float32),
            "z": hit_cols["z"].astype(np.float32),
            "volume_id": hit_cols["volume_id"].astype(np.int32),
            "layer_id": np.zeros(n, np.int32), "module_id": np.zeros(n, np.int32),
            "particle_id": pid, "weight": w.astype(np.float32),
        })
        particles = _particles(rows[pid != 0], pid[pid != 0], f, ev)
        check_event(hits, particles, event=ev, hits_file=f, particles_file=f)
        return Event(ev, hits, particles)


def _require_finite(values: np.ndarray, file, event, column) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        raise DataError(f"{int(bad.sum())} NaN/inf/empty value(s), first in the event's row {int(np.flatnonzero(bad)[0])}",
                        file=file, event=event, column=column)


def _check_weights(pid: np.ndarray, weight: np.ndarray, file, event) -> None:
    if (weight < 0).any():
        raise DataError("negative hit weight(s)", file=file, event=event, column="weight")
    if (weight[pid == 0] != 0).any():
        raise DataError("noise hits (particle_id 0) with non-zero weight (TrackML gives noise weight 0)", file=file,
                        event=event, column="weight")
    total = float(weight.sum())
    if total > 1 + WEIGHT_SUM_TOLERANCE:
        raise DataError(f"weights sum to {total:.6g} > 1: not TrackML score weights (REFERENCE 2.1)", file=file,
                        event=event, column="weight")


def _particles(rows: pd.DataFrame, pid: np.ndarray, file, event) -> pd.DataFrame:
    """One row per particle from its hits' rows, which must all carry the same values (numpy: this runs
    once per event, and pandas' groupby costs more than the rest of the event)."""
    order = np.argsort(pid, kind="stable")
    spid = pid[order]
    new_particle = np.r_[True, spid[1:] != spid[:-1]] if len(spid) else np.zeros(0, bool)
    starts, group = np.flatnonzero(new_particle), np.cumsum(new_particle) - 1
    first = {}
    differing = []
    for c in PARTICLE_COLUMNS:
        v = _cast(rows[c], np.dtype("float64"), file=file, event=event, column=c)
        _require_finite(v, file, event, c)
        v = v[order]
        first[c] = v[starts]
        if (v != first[c][group]).any():
            differing.append(c)
    if differing:
        raise DataError("rows of the same particle_id disagree on its vertex/momentum/charge", file=file,
                        event=event, column=", ".join(differing))
    q = _cast(pd.Series(first["q"]), np.dtype("int32"), file=file, event=event, column="q")
    return pd.DataFrame({
        "event_id": np.int64(event),
        "particle_id": spid[starts],
        **{c: first[c].astype(np.float32) for c in ("vx", "vy", "vz", "px", "py", "pz")},
        "q": q,
        "nhits": np.diff(np.r_[starts, len(spid)]).astype(np.int32),
    })
