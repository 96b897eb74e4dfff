"""ACTS examples CSV output (Fatras or Geant4 simulation + digitisation) converted to the event store.

Per event (`event<9 digits>-<stem>.csv[.gz]`): a particles file, the sim `hits`, and usually
`measurements`, `measurement-simhit-map` and `cells`. The columns drifted between ACTS versions
(REFERENCE.md 5.3); every variant below is read, detected from the header.

Mapping to the store (documented contract):

* **hits**: one store hit per measurement, hit_id = measurement_id + 1 (TrackML hit ids are 1-based).
  Without a measurements file the sim hits themselves are the hits (hit_id = sim-hit row + 1,
  x, y, z = tx, ty, tz).
* **positions**: x, y, z = `global_x/y/z` of the measurement (written only since ACTS v43.3, and NaN
  there unless cluster output is configured). Where they are absent or not finite, x, y, z = the mean
  `tx, ty, tz` of the measurement's linked sim hits (`measurement-simhit-map` -> row of `hits`); with
  one linked sim hit (every public sample) that is exactly its position. The mean follows ACTS's own
  "average sim hit" truth of a measurement. This is logged once per source. A measurement without a
  finite global position and without a linked sim hit is an error.
* **truth**: a measurement's particle is the particle with most linked sim hits (lowest id on ties);
  tx..tpz come from that particle's first linked sim hit (lowest row). A measurement with no row in
  the map truly has no sim hit: it is noise (particle 0) with truth = its own position.
* **particle ids** (ACTS barcode <= v43: primary vertex bits 52-63, secondary vertex 40-51, particle
  24-39, generation 16-23, sub-particle 0-15; or since v44 the split columns `particle_id_pv, _sv,
  _part, _gen, _subpart`) are re-packed into the TrackML bit layout, never decoded with the TrackML
  function: vertex_id (52-62) <- primary vertex **+ 1**, primary_id (36-51) <- particle, generation
  (24-35) <- generation, secondary_id (12-23) <- sub-particle, process (0-11) <- secondary vertex.
  The +1 makes every ACTS particle id non-zero: in ACTS files barcode 0 is a particle like any other
  (traccc's single-track samples use it), while TrackML's particle id 0 means noise. A field that
  does not fit its TrackML width is an error naming the file, event and column.
* **particles**: one stem per event, by preference `particles_simulated` > `particles_initial` >
  `particles` > `particles_selected` > `particles_final`, taking the first one present that holds
  every particle owning a store hit (see `PARTICLE_STEMS`). If none does, the event is refused:
  inventing particle rows from sim hits would need a production vertex and initial momentum that sim
  hits do not carry, and turning those hits into noise would corrupt the truth.
* **cells** (`geometry_id, measurement_id, channel0, channel1, timestamp, value`; before the rename
  the measurement column was called `hit_id`): kept as the store's CELLS table with hit_id =
  measurement_id + 1, ch0 = channel0, ch1 = channel1, value; geometry_id and timestamp have no store
  column and are dropped.
* volume_id, layer_id, module_id decoded from `geometry_id` (volume bits 56-63, layer 36-47,
  sensitive 8-27); nhits = the particle's number of store hits; weights are TrackML phase-1 weights
  recomputed from the truth (`trackpipe.weights`).
"""

from __future__ import annotations

import gzip
import io
import logging
import re
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError
from ..weights import hit_weights
from .store import Event
from .validate import _cast, check_event, check_unique, require_columns

log = logging.getLogger(__name__)

_FILE_RE = re.compile(r"^event(\d{9})-([a-z_\-]+)\.csv(\.gz)?$")
# Preference order. particles_simulated (current ACTS) and particles_initial (older name) hold every
# particle the simulation propagated, with production vertex and initial momentum, which the TrackML
# weights need (pT of the initial momentum, hit order along |tz - vz|). `particles` is the generator
# output in most versions: initial kinematics, but it may lack secondaries made in the simulation.
# particles_selected may lack particles that have hits. particles_final holds the *final* state
# (vertex where the particle stopped, momentum after energy loss), so it is the last resort.
PARTICLE_STEMS = ("particles_simulated", "particles_initial", "particles", "particles_selected", "particles_final")
FIELDS = ("pv", "sv", "part", "gen", "subpart")
SPLIT_ID = tuple(f"particle_id_{f}" for f in FIELDS)
# ACTS <= v43 barcode fields: (shift, bits)
_BARCODE = {"pv": (52, 12), "sv": (40, 12), "part": (24, 16), "gen": (16, 8), "subpart": (0, 16)}
# TrackML layout field each ACTS field goes to: (shift, bits). The vertex gets 11 bits so that the id
# stays a non-negative int64.
_TRACKML = {"pv": (52, 11), "part": (36, 16), "gen": (24, 12), "subpart": (12, 12), "sv": (0, 12)}
# Added to the primary vertex number so that no ACTS particle id packs to TrackML's noise id 0.
VERTEX_OFFSET = 1
_UINT64_COLUMNS = ("particle_id", "geometry_id")
_GLOBALS = ("global_x", "global_y", "global_z")
_TRUTH = ("tx", "ty", "tz", "tpx", "tpy", "tpz")


def decode_geometry_id(gid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    gid = np.asarray(gid, dtype=np.uint64)
    volume = (gid >> np.uint64(56)) & np.uint64(0xFF)
    layer = (gid >> np.uint64(36)) & np.uint64(0xFFF)
    sensitive = (gid >> np.uint64(8)) & np.uint64(0xFFFFF)
    return volume.astype(np.int32), layer.astype(np.int32), sensitive.astype(np.int32)


def pack_trackml_id(fields: dict[str, np.ndarray], *, file=None, event=None, columns=None) -> np.ndarray:
    """Re-pack ACTS particle-id fields (pv, sv, part, gen, subpart) into a TrackML-layout int64.

    `columns` names the input column of each field, for the error message.
    """
    out = np.zeros(len(np.asarray(fields["pv"])), dtype=np.int64)
    for name, (shift, bits) in _TRACKML.items():
        v = np.asarray(fields[name], dtype=np.int64) + (VERTEX_OFFSET if name == "pv" else 0)
        bad = (v < 0) | (v >= (1 << bits))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            shown = int(v[i]) - (VERTEX_OFFSET if name == "pv" else 0)
            offset = f" (+{VERTEX_OFFSET})" if name == "pv" else ""
            raise DataError(f"{int(bad.sum())} particle id(s) whose {name!r} field does not fit the {bits} bits of the "
                            f"TrackML layout (first: row {i}, value {shown}{offset})", file=file, event=event,
                            column=(columns or {}).get(name, "particle_id"))
        out |= v << shift
    return out


def unpack_trackml_id(pid) -> dict[str, int]:
    """The ACTS fields of one packed id (inverse of `pack_trackml_id`), for messages and tests."""
    pid = int(pid)
    f = {name: (pid >> shift) & ((1 << bits) - 1) for name, (shift, bits) in _TRACKML.items()}
    f["pv"] -= VERTEX_OFFSET
    return f


def barcode_fields(barcode: np.ndarray) -> dict[str, np.ndarray]:
    """Fields of ACTS <= v43 single-column barcodes."""
    b = np.asarray(barcode, dtype=np.uint64)
    return {k: ((b >> np.uint64(s)) & np.uint64((1 << n) - 1)).astype(np.int64) for k, (s, n) in _BARCODE.items()}


class ACTSSource:
    """A directory of ACTS CSV event files."""

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.is_dir():
            raise DataError("expected a directory of ACTS CSV files", file=self.path)
        self._files: dict[int, dict[str, Path]] = {}
        for p in sorted(self.path.iterdir()):
            m = _FILE_RE.match(p.name)
            if m:
                stems = self._files.setdefault(int(m.group(1)), {})
                if m.group(2) in stems:
                    raise DataError(f"two files for stem {m.group(2)!r}: {stems[m.group(2)].name} and {p.name}",
                                    file=self.path, event=int(m.group(1)))
                stems[m.group(2)] = p
        if not self._files:
            raise DataError("no ACTS event files (event<9 digits>-<stem>.csv[.gz]) found", file=self.path)
        self._noticed: set[str] = set()

    @property
    def event_ids(self) -> list[int]:
        return sorted(self._files)

    def _notice(self, key: str, message: str) -> None:
        """Log a conversion choice once per source, not once per event."""
        if key not in self._noticed:
            self._noticed.add(key)
            log.warning("%s: %s", self.path, message)

    def _expected(self, event_id: int, stem: str) -> Path:
        return self.path / f"event{event_id:09d}-{stem}.csv"

    def _read(self, event_id: int, stem: str) -> tuple[pd.DataFrame, Path]:
        path = self._files[event_id][stem]
        try:
            raw = path.read_bytes()
            if path.name.endswith(".gz"):
                raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as e:
            raise DataError(f"cannot read compressed data (truncated or corrupt?): {e}", file=path,
                            event=event_id) from None
        try:
            # Particle and geometry ids are unsigned 64-bit: parse them as such, never through float.
            df = pd.read_csv(io.BytesIO(raw), header=0, index_col=False, dtype={c: "uint64" for c in _UINT64_COLUMNS})
        except (ValueError, OverflowError):  # includes pandas' parser errors: the slow path names the problem
            df = _read_text(raw, path, event_id)
        return df, path

    def _particle_ids(self, df: pd.DataFrame, path, event_id) -> np.ndarray:
        if all(c in df.columns for c in SPLIT_ID):  # ACTS >= v44
            fields = {f: _cast(df[c], np.dtype("int64"), file=path, event=event_id, column=c)
                      for f, c in zip(FIELDS, SPLIT_ID)}
            columns = dict(zip(FIELDS, SPLIT_ID))
        elif "particle_id" in df.columns:  # ACTS <= v43 barcode
            fields = barcode_fields(df["particle_id"].to_numpy(np.uint64))
            columns = dict.fromkeys(FIELDS, "particle_id")
        else:
            raise DataError(f"no particle id: expected 'particle_id' or the split columns {list(SPLIT_ID)}; found "
                            f"{list(df.columns)}", file=path, event=event_id, column="particle_id")
        return pack_trackml_id(fields, file=path, event=event_id, columns=columns)

    def _sim_hits(self, event_id: int) -> dict:
        if "hits" not in self._files[event_id]:
            raise DataError("missing sim hits file", file=self._expected(event_id, "hits"), event=event_id)
        df, path = self._read(event_id, "hits")
        require_columns(df, ["geometry_id", *_TRUTH], file=path, event=event_id)
        return {"path": path, "n": len(df), "pid": self._particle_ids(df, path, event_id),
                "gid": df["geometry_id"].to_numpy(np.uint64),
                **{c: _cast(df[c], np.dtype("float64"), file=path, event=event_id, column=c) for c in _TRUTH}}

    def _simhits_as_hits(self, sim: dict) -> dict:
        rows = np.arange(sim["n"])
        return {"hit_id": rows + 1, "gid": sim["gid"], "x": sim["tx"], "y": sim["ty"], "z": sim["tz"],
                "particle_id": sim["pid"], **{c: sim[c] for c in _TRUTH}}

    def _measurement_hits(self, event_id: int, sim: dict) -> dict:
        mdf, mpath = self._read(event_id, "measurements")
        require_columns(mdf, ["measurement_id", "geometry_id"], file=mpath, event=event_id)
        mid = _cast(mdf["measurement_id"], np.dtype("int64"), file=mpath, event=event_id, column="measurement_id")
        check_unique(mdf, ["measurement_id"], file=mpath, event=event_id)
        n = len(mid)
        has_globals = all(c in mdf.columns for c in _GLOBALS)
        xyz = np.full((n, 3), np.nan)
        if has_globals:
            for k, c in enumerate(_GLOBALS):
                xyz[:, k] = _cast(mdf[c], np.dtype("float64"), file=mpath, event=event_id, column=c)
        need_position = ~np.isfinite(xyz).all(axis=1)
        what = ("no global_x/y/z columns (ACTS before v43.3)" if not has_globals
                else "NaN/inf global_x/y/z (ACTS writes NaN unless cluster output is configured)")

        if "measurement-simhit-map" not in self._files[event_id]:
            if need_position.any():
                i = int(np.flatnonzero(need_position)[0])
                raise DataError(f"{int(need_position.sum())} measurement(s) with {what} (first: measurement_id "
                                f"{int(mid[i])}), and no measurement-simhit-map file to take the position of the "
                                f"linked sim hit from", file=mpath, event=event_id, column=_bad_global(mdf, i))
            raise DataError("measurements without a measurement-simhit-map file: their truth particle is unknown",
                            file=self._expected(event_id, "measurement-simhit-map"), event=event_id,
                            column="measurement_id")
        mapdf, mappath = self._read(event_id, "measurement-simhit-map")
        require_columns(mapdf, ["measurement_id", "hit_id"], file=mappath, event=event_id)
        m_of = _cast(mapdf["measurement_id"], np.dtype("int64"), file=mappath, event=event_id, column="measurement_id")
        s_of = _cast(mapdf["hit_id"], np.dtype("int64"), file=mappath, event=event_id, column="hit_id")
        out_of_range = (s_of < 0) | (s_of >= sim["n"])
        if out_of_range.any():
            i = int(np.flatnonzero(out_of_range)[0])
            raise DataError(f"{int(out_of_range.sum())} sim hit index(es) out of range (first: row {i}, hit_id "
                            f"{int(s_of[i])}; the hits file has {sim['n']} rows)", file=mappath, event=event_id,
                            column="hit_id")
        unlinked = ~np.isin(m_of, mid)
        if unlinked.any():
            i = int(np.flatnonzero(unlinked)[0])
            raise DataError(f"{int(unlinked.sum())} map row(s) name a measurement that is not in the measurements "
                            f"file (first: row {i}, measurement_id {int(m_of[i])})", file=mappath, event=event_id,
                            column="measurement_id")

        links = _link_measurements(mid, m_of, s_of, sim)
        linked = links["first_row"] >= 0
        if need_position.any():
            missing = need_position & ~linked
            if missing.any():
                i = int(np.flatnonzero(missing)[0])
                raise DataError(f"{int(missing.sum())} measurement(s) with {what} and no linked sim hit in "
                                f"{mappath.name} (first: measurement_id {int(mid[i])})", file=mpath, event=event_id,
                                column=_bad_global(mdf, i))
            xyz[need_position] = links["mean_xyz"][need_position]
            self._notice("simhit-positions", f"measurements have {what}; their positions are the mean position of "
                                             f"their linked sim hits (measurement-simhit-map -> hits tx, ty, tz)")

        row = np.where(linked, links["first_row"], 0)
        truth = {c: np.where(linked, sim[c][row], 0.0) for c in _TRUTH}
        for k, c in enumerate(("tx", "ty", "tz")):  # noise: truth = the measured position
            truth[c] = np.where(linked, truth[c], xyz[:, k])
        return {"hit_id": mid + 1, "gid": mdf["geometry_id"].to_numpy(np.uint64),
                "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2],
                "particle_id": np.where(linked, links["particle_id"], 0), **truth}

    def _particles(self, event_id: int, needed: np.ndarray) -> tuple[pd.DataFrame, Path]:
        present = [s for s in PARTICLE_STEMS if s in self._files[event_id]]
        if not present:
            raise DataError(f"missing particles file (one of {list(PARTICLE_STEMS)})",
                            file=self._expected(event_id, "particles"), event=event_id, column="particle_id")
        first_failure = None
        for stem in present:
            table, path = self._particle_table(event_id, stem)
            missing = np.setdiff1d(needed, table.particle_id.to_numpy())
            if not len(missing):
                if stem == "particles_final":
                    self._notice("particles_final", "only particles_final holds every particle with hits: production "
                                                    "vertex and momentum are the final-state ones")
                return table, path
            first_failure = first_failure or (path, missing)
        path, missing = first_failure
        raise DataError(f"{len(missing)} particle(s) that have hits are in none of the particles files present "
                        f"({', '.join(present)}); first: {unpack_trackml_id(missing[0])}. Refused rather than turning "
                        f"their hits into noise: write particles_simulated (or particles_initial) with the event",
                        file=path, event=event_id, column="particle_id")

    def _particle_table(self, event_id: int, stem: str) -> tuple[pd.DataFrame, Path]:
        pdf, path = self._read(event_id, stem)
        require_columns(pdf, ["particle_type", "vx", "vy", "vz", "px", "py", "pz", "q"], file=path, event=event_id)
        f32 = {c: _cast(pdf[c], np.dtype("float64"), file=path, event=event_id, column=c).astype(np.float32)
               for c in ("vx", "vy", "vz", "px", "py", "pz")}
        charge = _cast(pdf["q"], np.dtype("float64"), file=path, event=event_id, column="q")
        return pd.DataFrame({"particle_id": self._particle_ids(pdf, path, event_id), **f32,
                             "q": np.rint(charge).astype(np.int32),
                             "particle_type": _cast(pdf["particle_type"], np.dtype("int32"), file=path,
                                                    event=event_id, column="particle_type")}), path

    def _cells(self, event_id: int, has_measurements: bool) -> tuple[pd.DataFrame | None, Path | None]:
        if "cells" not in self._files[event_id]:
            return None, None
        cdf, path = self._read(event_id, "cells")
        # ACTS called the measurement column `hit_id` before renaming it to `measurement_id`.
        mcol = "hit_id" if "hit_id" in cdf.columns and "measurement_id" not in cdf.columns else "measurement_id"
        require_columns(cdf, [mcol, "channel0", "channel1", "value"], file=path, event=event_id)
        if not has_measurements:
            raise DataError("cells refer to measurements, but the event has no measurements file", file=path,
                            event=event_id, column=mcol)

        def column(name, dtype):
            return _cast(cdf[name], np.dtype(dtype), file=path, event=event_id, column=name)
        cells = pd.DataFrame({"hit_id": column(mcol, "int64") + 1, "ch0": column("channel0", "int32"),
                              "ch1": column("channel1", "int32"), "value": column("value", "float64").astype(np.float32)})
        return cells, path

    def read_event(self, event_id: int) -> Event:
        if event_id not in self._files:
            raise DataError("no such event in the source", file=self.path, event=event_id)
        sim = self._sim_hits(event_id)
        has_measurements = "measurements" in self._files[event_id]
        h = self._measurement_hits(event_id, sim) if has_measurements else self._simhits_as_hits(sim)
        hits_file = self._files[event_id]["measurements"] if has_measurements else sim["path"]
        vol, lay, mod = decode_geometry_id(h["gid"])
        hits = pd.DataFrame({
            "hit_id": np.asarray(h["hit_id"], np.int64),
            **{c: np.asarray(h[c], np.float32) for c in "xyz"},
            "volume_id": vol, "layer_id": lay, "module_id": mod,
            "particle_id": np.asarray(h["particle_id"], np.int64),
            **{c: np.asarray(h[c], np.float32) for c in _TRUTH},
        })
        owners = np.unique(hits.particle_id.to_numpy()[hits.particle_id.to_numpy() != 0])
        particles, particles_file = self._particles(event_id, owners)
        counts = hits.loc[hits.particle_id != 0, "particle_id"].value_counts()
        particles["nhits"] = counts.reindex(particles.particle_id, fill_value=0).to_numpy(np.int32)
        check_unique(particles, ["particle_id"], file=particles_file, event=event_id)
        hits["weight"] = hit_weights(hits, particles).astype(np.float32)
        cells, cells_file = self._cells(event_id, has_measurements)
        check_event(hits, particles, event=event_id, hits_file=hits_file, particles_file=particles_file,
                    cells=cells, cells_file=cells_file)
        eid = np.int64(event_id)
        return Event(event_id, hits.assign(event_id=eid), particles.assign(event_id=eid),
                     None if cells is None else cells.assign(event_id=eid))


def _read_text(raw: bytes, path, event_id) -> pd.DataFrame:
    """Slow path after a fast parse failed: read as text, then name the bad uint64 value's column and row."""
    try:
        df = pd.read_csv(io.BytesIO(raw), header=0, index_col=False, dtype={c: str for c in _UINT64_COLUMNS})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as e:
        raise DataError(f"not a valid CSV file: {e}", file=path, event=event_id) from None
    for c in _UINT64_COLUMNS:
        if c in df.columns:
            df[c] = _uint64(df[c], path, event_id, c)
    return df


def _uint64(s: pd.Series, path, event_id, column) -> np.ndarray:
    out = np.empty(len(s), dtype=np.uint64)
    for i, v in enumerate(s.tolist()):
        try:
            if not isinstance(v, str) or not v.strip().isdigit():
                raise ValueError(v)
            out[i] = int(v)
        except (ValueError, OverflowError):
            raise DataError(f"row {i}: {v!r} is not an unsigned 64-bit integer", file=path, event=event_id,
                            column=column) from None
    return out


def _bad_global(mdf: pd.DataFrame, i: int) -> str:
    """The global position column to blame for measurement row i."""
    if not all(c in mdf.columns for c in _GLOBALS):
        return ", ".join(c for c in _GLOBALS if c not in mdf.columns)
    return next((c for c in _GLOBALS if not np.isfinite(pd.to_numeric(mdf[c].iloc[[i]]).iloc[0])), _GLOBALS[0])


def _link_measurements(mid, m_of, s_of, sim) -> dict:
    """Per measurement (order of `mid`): majority particle, its first sim-hit row (-1: no link), mean position.

    Majority = most linked sim hits, lowest packed particle id on ties; its first row = lowest row.
    The position is the mean of *all* linked sim hits (ACTS's average sim hit). Plain numpy: this runs
    once per event and pandas' groupby overhead dominated small events.
    """
    if len(m_of) == 0:  # an empty map: every measurement is noise
        return {"particle_id": np.zeros(len(mid), np.int64), "first_row": np.full(len(mid), -1, np.int64),
                "mean_xyz": np.full((len(mid), 3), np.nan)}
    p_of = sim["pid"][s_of]
    order = np.lexsort((s_of, p_of, m_of))  # by measurement, then particle, then sim-hit row
    m, p, s = m_of[order], p_of[order], s_of[order]
    starts = np.flatnonzero(np.r_[True, (m[1:] != m[:-1]) | (p[1:] != p[:-1])])  # one (measurement, particle) group
    counts = np.diff(np.r_[starts, len(m)])
    gm, gp, gs = m[starts], p[starts], s[starts]  # s[starts] is the group's lowest row
    best = np.lexsort((gp, -counts, gm))  # per measurement: most sim hits first, then lowest particle id
    best = best[np.r_[True, gm[best][1:] != gm[best][:-1]]]
    per_m, per_p, per_s = gm[best], gp[best], gs[best]  # sorted by measurement id, unique
    inverse = np.unique(m_of, return_inverse=True)[1]  # groups in the order of per_m
    n_links = np.bincount(inverse)
    mean = np.stack([np.bincount(inverse, weights=sim[c][s_of]) / n_links for c in ("tx", "ty", "tz")], axis=1)
    at = np.minimum(np.searchsorted(per_m, mid), len(per_m) - 1)
    has = per_m[at] == mid
    return {"particle_id": np.where(has, per_p[at], 0), "first_row": np.where(has, per_s[at], -1),
            "mean_xyz": np.where(has[:, None], mean[at], np.nan)}
