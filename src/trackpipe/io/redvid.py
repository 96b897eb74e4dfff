"""REDVID CSV files: one ';'-separated table, one row per hit, 15 columns.

Helical files carry `radial_const, azimuthal_const, pitch_const, radial_coeff, azimuthal_coeff,
pitch_coeff` (r = r0 + a t, theta = theta0 + d t, z = z0 + b t); linear files carry a start point and a
direction, `r_0, theta_0, z_0, r_d, theta_d, z_d`, in the same six places. Coordinates are cylindrical
(hit_r, hit_theta = angle to the x axis, hit_z).

Mapping to the event store (documented contract, reversed exactly by the writer):

* x = r cos(theta), y = r sin(theta), z = z;
* volume_id = sub-detector type code (`SUB_DETECTOR_CODES`), layer_id = sub_detector_id, module_id = 0;
* particle_id = track_id + 1 (REDVID track ids start at 0, and 0 means noise in the store);
  track_id -1 (written by trackpipe's simulator for noise hits) maps to particle 0;
* weight = 1 for track hits and 0 for noise, so that the TrackML score is the paper's FitAccuracy;
* one particle per track: vertex (0, 0, 0), momentum and charge 0 (REDVID has no momentum), the six
  parameters and the track type in the particles table.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError
from .atomic import atomic_path
from .store import Event
from .validate import _cast, check_event, group_by_event, require_columns

BASE_COLUMNS = ["event_id", "sub_detector_id", "sub_detector_type", "track_id", "track_type"]
HIT_COLUMNS = ["hit_id", "hit_r", "hit_theta", "hit_z"]
HELICAL_PARAMS = ["radial_const", "azimuthal_const", "pitch_const", "radial_coeff", "azimuthal_coeff", "pitch_coeff"]
LINEAR_PARAMS = ["r_0", "theta_0", "z_0", "r_d", "theta_d", "z_d"]
SUB_DETECTOR_CODES = {"pixel": 1, "barrel": 2, "short_strip": 3, "long_strip": 4}
SUB_DETECTOR_NAMES = {v: k for k, v in SUB_DETECTOR_CODES.items()}
TRACK_TYPES = ("linear", "helical", "helical_expanding")


def columns_for(params: list[str]) -> list[str]:
    return BASE_COLUMNS + params + HIT_COLUMNS


class REDVIDSource:
    """All events of one REDVID CSV file."""

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError("no such REDVID CSV file", file=self.path)
        try:
            df = pd.read_csv(self.path, sep=";", quotechar='"', skipinitialspace=True)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, EOFError, OSError) as e:
            raise DataError(f"not a valid ';'-separated REDVID CSV file: {e}", file=self.path) from None
        df.columns = [c.strip() for c in df.columns]
        if all(c in df.columns for c in HELICAL_PARAMS):
            self.params = HELICAL_PARAMS
        elif all(c in df.columns for c in LINEAR_PARAMS):
            self.params = LINEAR_PARAMS
        else:
            raise DataError(f"neither the helical parameters {HELICAL_PARAMS} nor the linear parameters "
                            f"{LINEAR_PARAMS} are all present; found {list(df.columns)}", file=self.path,
                            column=", ".join(c for c in HELICAL_PARAMS if c not in df.columns))
        require_columns(df, columns_for(self.params), file=self.path)
        self._groups = group_by_event(df, file=self.path)
        self._df = df

    @property
    def event_ids(self) -> list[int]:
        return list(self._groups)

    def read_event(self, event_id: int) -> Event:
        rows = self._df.iloc[self._groups[event_id]]
        f, ev = self.path, event_id
        ints = {c: _cast(rows[c], np.dtype("int64"), file=f, event=ev, column=c)
                for c in ("sub_detector_id", "track_id", "hit_id")}
        floats = {c: _cast(rows[c], np.dtype("float64"), file=f, event=ev, column=c)
                  for c in ["hit_r", "hit_theta", "hit_z"] + self.params}
        for c, v in floats.items():
            bad = ~np.isfinite(v)
            if bad.any():
                raise DataError(f"{int(bad.sum())} NaN/inf value(s)", file=f, event=ev, column=c)
        types = rows["sub_detector_type"].astype(str).str.strip().str.strip('"').to_numpy()
        unknown = sorted(set(types) - set(SUB_DETECTOR_CODES))
        if unknown:
            raise DataError(f"unknown sub-detector type(s) {unknown}; expected one of {list(SUB_DETECTOR_CODES)}",
                            file=f, event=ev, column="sub_detector_type")
        track = ints["track_id"]
        if (track < -1).any():
            raise DataError("track ids below -1 (only -1, noise, is allowed)", file=f, event=ev, column="track_id")
        r, th = floats["hit_r"], floats["hit_theta"]
        hits = pd.DataFrame({
            "event_id": np.int64(ev),
            "hit_id": ints["hit_id"],
            "x": (r * np.cos(th)).astype(np.float32),
            "y": (r * np.sin(th)).astype(np.float32),
            "z": floats["hit_z"].astype(np.float32),
            "volume_id": np.array([SUB_DETECTOR_CODES[t] for t in types], np.int32),
            "layer_id": ints["sub_detector_id"].astype(np.int32),
            "module_id": np.zeros(len(rows), np.int32),
            "particle_id": track + 1,
            "weight": (track >= 0).astype(np.float32),
        })
        track_rows = rows.assign(_pid=track + 1)[track >= 0]
        first = track_rows.groupby("_pid", sort=True).head(1).sort_values("_pid")
        # Every row of a track must repeat the same track parameters.
        per_track = track_rows.groupby("_pid")[self.params + ["track_type"]].nunique()
        inconsistent = per_track.columns[(per_track > 1).any()].tolist()
        if inconsistent:
            raise DataError("track parameters differ between hits of the same track", file=f, event=ev,
                            column=", ".join(inconsistent))
        n = len(first)
        particles = pd.DataFrame({
            "event_id": np.int64(ev),
            "particle_id": first["_pid"].to_numpy(np.int64),
            **{c: np.zeros(n, np.float32) for c in ("vx", "vy", "vz", "px", "py", "pz")},
            "q": np.zeros(n, np.int32),
            "nhits": track_rows.groupby("_pid").size().reindex(first["_pid"]).to_numpy(np.int32),
            "track_type": first["track_type"].astype(str).str.strip().str.strip('"').to_numpy(),
            **{c: first[c].to_numpy(np.float64) for c in self.params},
        })
        check_event(hits, particles, event=ev, hits_file=f, particles_file=f)
        return Event(ev, hits, particles)


def event_to_redvid_rows(event: Event) -> pd.DataFrame:
    """The REDVID rows of one store event (inverse of `REDVIDSource.read_event`)."""
    h, p = event.hits, event.particles
    params = HELICAL_PARAMS if all(c in p.columns for c in HELICAL_PARAMS) else (
        LINEAR_PARAMS if all(c in p.columns for c in LINEAR_PARAMS) else None)
    if params is None:
        raise DataError("particles carry no REDVID track parameters (not a REDVID-like store)", event=event.event_id,
                        column="radial_coeff")
    unknown = sorted(set(h.volume_id.unique()) - set(SUB_DETECTOR_NAMES))
    if unknown:
        raise DataError(f"volume ids {unknown} are not REDVID sub-detector codes", event=event.event_id,
                        column="volume_id")
    joined = h.merge(p[["particle_id", "track_type"] + params], on="particle_id", how="left")
    noise = joined.particle_id.to_numpy() == 0
    joined.loc[noise, "track_type"] = "noise"
    joined.loc[noise, params] = 0.0
    x, y = joined.x.to_numpy(np.float64), joined.y.to_numpy(np.float64)
    out = pd.DataFrame({
        "event_id": joined.event_id.to_numpy(np.int64) if "event_id" in joined else event.event_id,
        "sub_detector_id": joined.layer_id.to_numpy(np.int64),
        "sub_detector_type": [SUB_DETECTOR_NAMES[v] for v in joined.volume_id.to_numpy()],
        "track_id": joined.particle_id.to_numpy(np.int64) - 1,
        "track_type": joined.track_type.to_numpy(),
        **{c: joined[c].to_numpy(np.float64) for c in params},
        "hit_id": joined.hit_id.to_numpy(np.int64),
        "hit_r": np.hypot(x, y),
        "hit_theta": np.arctan2(y, x),
        "hit_z": joined.z.to_numpy(np.float64),
    })
    return out


def write_redvid_csv(path, events) -> Path:
    """Write events into one REDVID CSV file (atomically)."""
    frames = [event_to_redvid_rows(ev) for ev in events]
    if not frames:
        raise DataError("no events to write", file=path)
    df = pd.concat(frames, ignore_index=True)
    buf = io.StringIO()
    df.to_csv(buf, sep=";", index=False)
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue())
    return Path(path)
