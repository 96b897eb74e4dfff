"""ACTS examples CSV output (Fatras simulation + digitisation) converted to the event store.

Per event (`event<9 digits>-<stem>.csv[.gz]`): `particles` (or `particles_simulated`,
`particles_initial`), sim `hits`, `measurements`, `measurement-simhit-map`.

Mapping to the store (documented contract):

* one store hit per measurement: hit_id = measurement_id + 1 (TrackML hit ids are 1-based),
  x, y, z = global_x/y/z; without a measurements file the sim hits themselves are the hits
  (hit_id = sim-hit row + 1, x, y, z = tx, ty, tz);
* volume_id, layer_id, module_id decoded from `geometry_id` (volume bits 56-63, layer 36-47,
  sensitive 8-27);
* a measurement's particle is the particle of its sim hits (the one with most sim hits, lowest id on
  ties); unmatched measurements are noise (particle 0); truth position and momentum from that sim hit;
* particle ids are re-packed into the TrackML bit layout, never decoded with the TrackML function:
  vertex_id <- primary vertex (bits 52-63), primary_id <- particle (36-51), generation <- generation
  (24-35), secondary_id <- sub-particle (12-23), process <- secondary vertex (0-11). Both the single
  `particle_id` barcode column (ACTS <= v43: primary vertex 52-63, secondary vertex 40-51, particle
  24-39, generation 16-23, sub-particle 0-15) and the split `particle_id_pv/_sv/_part/_gen/_subpart`
  columns (ACTS >= v44) are read; a field that does not fit its TrackML width is an error;
* nhits = the particle's number of store hits; weights are TrackML phase-1 weights recomputed from
  the truth (`trackpipe.weights`).
"""

from __future__ import annotations

import gzip
import io
import re
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError
from ..weights import hit_weights
from .store import Event
from .validate import _cast, check_event, require_columns

_FILE_RE = re.compile(r"^event(\d{9})-([a-z_\-]+)\.csv(\.gz)?$")
PARTICLE_STEMS = ("particles", "particles_simulated", "particles_initial")
SPLIT_ID = ("particle_id_pv", "particle_id_sv", "particle_id_part", "particle_id_gen", "particle_id_subpart")
# ACTS <= v43 barcode fields: (shift, bits)
_BARCODE = {"pv": (52, 12), "sv": (40, 12), "part": (24, 16), "gen": (16, 8), "subpart": (0, 16)}
# TrackML layout fields each ACTS field goes to: (shift, bits)
_TRACKML = {"pv": (52, 11), "part": (36, 16), "gen": (24, 12), "subpart": (12, 12), "sv": (0, 12)}


def decode_geometry_id(gid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    gid = np.asarray(gid, dtype=np.uint64)
    volume = (gid >> np.uint64(56)) & np.uint64(0xFF)
    layer = (gid >> np.uint64(36)) & np.uint64(0xFFF)
    sensitive = (gid >> np.uint64(8)) & np.uint64(0xFFFFF)
    return volume.astype(np.int32), layer.astype(np.int32), sensitive.astype(np.int32)


def pack_trackml_id(fields: dict[str, np.ndarray], *, file=None, event=None) -> np.ndarray:
    """Re-pack ACTS particle-id fields into a TrackML-layout int64 (see module doc)."""
    out = np.zeros(len(next(iter(fields.values()))), dtype=np.int64)
    for name, (shift, bits) in _TRACKML.items():
        v = np.asarray(fields[name], dtype=np.int64)
        # The vertex field gets 11 bits so that the id stays a non-negative int64.
        if (v < 0).any() or (v >= (1 << bits)).any():
            raise DataError(f"ACTS particle-id field {name!r} value {int(v.max())} does not fit the {bits} bits of "
                            f"the TrackML layout", file=file, event=event, column="particle_id")
        out |= v << shift
    return out


def _barcode_fields(barcode: np.ndarray) -> dict[str, np.ndarray]:
    b = np.asarray(barcode, dtype=np.uint64)
    return {k: ((b >> np.uint64(s)) & np.uint64((1 << n) - 1)).astype(np.int64) for k, (s, n) in _BARCODE.items()}


class ACTSSource:
    """A directory of ACTS CSV event files."""

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.is_dir():
            raise DataError("expected a directory of ACTS CSV files", file=self.path)
        self._files: dict[int, dict[str, Path]] = {}
        for p in self.path.iterdir():
            m = _FILE_RE.match(p.name)
            if m:
                self._files.setdefault(int(m.group(1)), {})[m.group(2)] = p
        if not self._files:
            raise DataError("no ACTS event files (event<9 digits>-<stem>.csv[.gz]) found", file=self.path)

    @property
    def event_ids(self) -> list[int]:
        return sorted(self._files)

    def _read(self, event_id: int, stem: str) -> tuple[pd.DataFrame, Path]:
        path = self._files[event_id][stem]
        try:
            raw = path.read_bytes()
            if path.name.endswith(".gz"):
                raw = gzip.decompress(raw)
            # particle ids and geometry ids are unsigned 64-bit: read as text, convert explicitly.
            df = pd.read_csv(io.BytesIO(raw), header=0, index_col=False,
                             dtype={"particle_id": str, "geometry_id": str})
        except (EOFError, OSError, zlib.error) as e:
            raise DataError(f"cannot read compressed data (truncated or corrupt?): {e}", file=path,
                            event=event_id) from None
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
            raise DataError(f"not a valid CSV file: {e}", file=path, event=event_id) from None
        return df, path

    def _find(self, event_id: int, stems) -> str | None:
        return next((s for s in stems if s in self._files[event_id]), None)

    def _particle_ids(self, df, path, event_id) -> np.ndarray:
        if all(c in df.columns for c in SPLIT_ID):
            fields = {k: _cast(df[c], np.dtype("int64"), file=path, event=event_id, column=c)
                      for k, c in zip(("pv", "sv", "part", "gen", "subpart"), SPLIT_ID)}
        elif "particle_id" in df.columns:
            fields = _barcode_fields(_uint64(df["particle_id"], path, event_id, "particle_id"))
        else:
            raise DataError(f"no particle id: expected 'particle_id' or the split columns {list(SPLIT_ID)}",
                            file=path, event=event_id, column="particle_id")
        return pack_trackml_id(fields, file=path, event=event_id)

    def read_event(self, event_id: int) -> Event:
        stem = self._find(event_id, PARTICLE_STEMS)
        if stem is None:
            raise DataError(f"missing particles file (one of {list(PARTICLE_STEMS)})", file=self.path, event=event_id)
        if "hits" not in self._files[event_id]:
            raise DataError("missing sim hits file", file=self.path / f"event{event_id:09d}-hits.csv", event=event_id)
        pdf, ppath = self._read(event_id, stem)
        require_columns(pdf, ["particle_type", "vx", "vy", "vz", "px", "py", "pz", "q"], file=ppath, event=event_id)
        pids = self._particle_ids(pdf, ppath, event_id)
        f32 = {c: _cast(pdf[c], np.dtype("float64"), file=ppath, event=event_id, column=c).astype(np.float32)
               for c in ("vx", "vy", "vz", "px", "py", "pz")}
        charge = _cast(pdf["q"], np.dtype("float64"), file=ppath, event=event_id, column="q")
        particles = pd.DataFrame({"particle_id": pids, **f32, "q": np.rint(charge).astype(np.int32),
                                  "particle_type": _cast(pdf["particle_type"], np.dtype("int32"), file=ppath,
                                                         event=event_id, column="particle_type")})

        hdf, hpath = self._read(event_id, "hits")
        require_columns(hdf, ["geometry_id", "tx", "ty", "tz", "tpx", "tpy", "tpz"], file=hpath, event=event_id)
        sim_pid = self._particle_ids(hdf, hpath, event_id)
        sim_gid = _uint64(hdf["geometry_id"], hpath, event_id, "geometry_id")
        sim_t = {c: _cast(hdf[c], np.dtype("float64"), file=hpath, event=event_id, column=c)
                 for c in ("tx", "ty", "tz", "tpx", "tpy", "tpz")}

        if "measurements" in self._files[event_id]:
            mdf, mpath = self._read(event_id, "measurements")
            require_columns(mdf, ["measurement_id", "geometry_id", "global_x", "global_y", "global_z"], file=mpath,
                            event=event_id)
            mid = _cast(mdf["measurement_id"], np.dtype("int64"), file=mpath, event=event_id, column="measurement_id")
            gid = _uint64(mdf["geometry_id"], mpath, event_id, "geometry_id")
            xyz = {c: _cast(mdf[f"global_{c}"], np.dtype("float64"), file=mpath, event=event_id, column=f"global_{c}")
                   for c in "xyz"}
            if "measurement-simhit-map" not in self._files[event_id]:
                raise DataError("measurements without a measurement-simhit-map file", file=mpath, event=event_id)
            mapdf, mappath = self._read(event_id, "measurement-simhit-map")
            require_columns(mapdf, ["measurement_id", "hit_id"], file=mappath, event=event_id)
            m_of = _cast(mapdf["measurement_id"], np.dtype("int64"), file=mappath, event=event_id,
                         column="measurement_id")
            s_of = _cast(mapdf["hit_id"], np.dtype("int64"), file=mappath, event=event_id, column="hit_id")
            if ((s_of < 0) | (s_of >= len(hdf))).any():
                raise DataError(f"sim hit index out of range (the hits file has {len(hdf)} rows)", file=mappath,
                                event=event_id, column="hit_id")
            sim_row = _majority_simhit(m_of, s_of, sim_pid, mid)
            matched = sim_row >= 0
            hit_id = mid + 1
        else:
            gid, mid = sim_gid, np.arange(len(hdf))
            xyz = {c: sim_t[f"t{c}"] for c in "xyz"}
            sim_row, matched = mid.copy(), np.ones(len(hdf), bool)
            hit_id = mid + 1
        vol, lay, mod = decode_geometry_id(gid)
        rows = np.where(matched, sim_row, 0)
        hits = pd.DataFrame({
            "hit_id": hit_id.astype(np.int64),
            **{c: xyz[c].astype(np.float32) for c in "xyz"},
            "volume_id": vol, "layer_id": lay, "module_id": mod,
            "particle_id": np.where(matched, sim_pid[rows], 0).astype(np.int64),
            **{c: np.where(matched, sim_t[c][rows], xyz[c[1]] if c in ("tx", "ty", "tz") else 0.0).astype(np.float32)
               for c in ("tx", "ty", "tz", "tpx", "tpy", "tpz")},
        })
        counts = hits.loc[hits.particle_id != 0, "particle_id"].value_counts()
        particles["nhits"] = counts.reindex(particles.particle_id, fill_value=0).to_numpy(np.int32)
        hits["weight"] = hit_weights(hits, particles).astype(np.float32)
        check_event(hits, particles, event=event_id, hits_file=hpath, particles_file=ppath)
        return Event(event_id, hits.assign(event_id=np.int64(event_id)), particles.assign(event_id=np.int64(event_id)))


def _uint64(s: pd.Series, path, event_id, column) -> np.ndarray:
    try:
        return np.array([int(v) for v in s.astype(str)], dtype=np.uint64)
    except (ValueError, OverflowError):
        raise DataError("not an unsigned 64-bit integer", file=path, event=event_id, column=column) from None


def _majority_simhit(meas_of_map, sim_of_map, sim_pid, measurement_ids) -> np.ndarray:
    """Per measurement, a sim-hit row of its majority particle (most sim hits, lowest id on ties); -1 if none."""
    m = pd.DataFrame({"m": meas_of_map, "s": sim_of_map, "p": sim_pid[sim_of_map]})
    counts = m.groupby(["m", "p"]).agg(n=("s", "size"), s=("s", "min")).reset_index()
    counts = counts.sort_values(["m", "n", "p"], ascending=[True, False, True]).drop_duplicates("m")
    lookup = pd.Series(counts.s.to_numpy(), index=counts.m.to_numpy())
    return lookup.reindex(measurement_ids).fillna(-1).to_numpy(np.int64)
