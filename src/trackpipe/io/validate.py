"""The one place that checks tables against the schema and raises clear errors.

Every check names the file, the event and the column. Readers call `coerce_table` (dtypes) and
`check_event` (consistency between hits, particles and cells of one event).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import DataError
from ..schema import FINITE_COLUMNS, TRUTH_COLUMNS, Table


def require_columns(df: pd.DataFrame, columns, *, file, event=None) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"missing required column(s); found {list(df.columns)}", file=file, event=event,
                        column=", ".join(missing))


def coerce_table(df: pd.DataFrame, table: Table, *, file, event=None, required=None) -> pd.DataFrame:
    """Cast the schema's columns of `df` to their declared dtypes; keep only schema columns.

    A value that cannot be represented exactly in the declared dtype (text in a number column, a
    fractional or out-of-range id) is an error, never a silent truncation.
    """
    require_columns(df, table.required if required is None else required, file=file, event=event)
    out = {}
    for col in table.columns:
        if col.name not in df.columns:
            continue
        s = df[col.name]
        if col.dtype == "string":
            out[col.name] = s.astype("string[pyarrow]") if len(s) else s.astype(object).astype("string[pyarrow]")
            continue
        target = np.dtype(col.dtype)
        out[col.name] = _cast(s, target, file=file, event=event, column=col.name)
    return pd.DataFrame(out, index=df.index).reset_index(drop=True)


def _cast(s: pd.Series, target: np.dtype, *, file, event, column) -> np.ndarray:
    values = s.to_numpy()
    if values.dtype == object or pd.api.types.is_string_dtype(s.dtype):
        num = pd.to_numeric(s, errors="coerce")
        bad = num.isna() & s.notna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"non-numeric value {s.iloc[i]!r} in row {i}", file=file, event=event, column=column)
        values = num.to_numpy()
    if target.kind in "iu":
        if values.dtype.kind == "f":
            if not np.all(np.isfinite(values)):
                raise DataError("missing or non-finite value in an integer column", file=file, event=event,
                                column=column)
            if np.any(values != np.round(values)):
                raise DataError("fractional value in an integer column", file=file, event=event, column=column)
            # float64 represents integers exactly only up to 2**53: ids beyond that were already lost.
            if np.any(np.abs(values) > 2**53):
                raise DataError("integer value too large to have been stored exactly as a float", file=file,
                                event=event, column=column)
        elif values.dtype.kind == "b":
            raise DataError("boolean values in an integer column", file=file, event=event, column=column)
        info = np.iinfo(target)
        if values.size and (values.min() < info.min or values.max() > info.max):
            raise DataError(f"value out of range for {target.name}", file=file, event=event, column=column)
    elif values.dtype.kind not in "iuf" and values.size:
        raise DataError(f"column of dtype {values.dtype} cannot be read as {target.name}", file=file, event=event,
                        column=column)
    return values.astype(target)


def check_finite(df: pd.DataFrame, table: Table, *, file, event=None) -> None:
    for name in FINITE_COLUMNS.get(table.name, ()):
        if name in df.columns:
            v = df[name].to_numpy()
            bad = ~np.isfinite(v)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise DataError(f"{int(bad.sum())} NaN/inf value(s), first in row {i} ({v[i]})", file=file,
                                event=event, column=name)


def check_unique(df: pd.DataFrame, columns, *, file, event=None) -> None:
    dup = df.duplicated(list(columns), keep=False)
    if dup.any():
        row = df.loc[dup].iloc[0]
        what = ", ".join(f"{c}={row[c]}" for c in columns)
        raise DataError(f"{int(dup.sum())} rows with duplicated ids (first: {what})", file=file, event=event,
                        column=columns[-1])


def hits_have_truth(hits: pd.DataFrame, *, file, event=None) -> bool:
    """Whether `hits` carry the truth columns (`schema.TRUTH_COLUMNS`): all of them (True) or none
    (False, a truth-less event); one without the other is an error naming the missing one."""
    present = [c for c in TRUTH_COLUMNS if c in hits.columns]
    if present and len(present) < len(TRUTH_COLUMNS):
        missing = [c for c in TRUTH_COLUMNS if c not in present]
        raise DataError(f"hits have truth column(s) {present} but not {missing}: truth needs all of "
                        f"{list(TRUTH_COLUMNS)} (or none, for events without truth)", file=file, event=event,
                        column=", ".join(missing))
    return bool(present)


def check_event(hits: pd.DataFrame, particles: pd.DataFrame | None, *, event, hits_file, particles_file=None,
                cells: pd.DataFrame | None = None, cells_file=None, check_nhits: bool = True) -> None:
    """Consistency of one event: non-empty, finite, unique ids, particles and nhits agreeing with hits.

    An event without truth (hits without `TRUTH_COLUMNS`) must have no particles (None or empty).
    """
    from ..schema import CELLS, HITS, PARTICLES

    if len(hits) == 0:
        raise DataError("event has no hits", file=hits_file, event=event, column="hit_id")
    check_finite(hits, HITS, file=hits_file, event=event)
    check_unique(hits, ["hit_id"], file=hits_file, event=event)
    if not hits_have_truth(hits, file=hits_file, event=event):
        if particles is not None and len(particles):
            raise DataError(f"{len(particles)} particle(s) but the hits have no truth columns "
                            f"{list(TRUTH_COLUMNS)}", file=particles_file, event=event, column="particle_id")
    elif particles is not None:
        check_finite(particles, PARTICLES, file=particles_file, event=event)
        check_unique(particles, ["particle_id"], file=particles_file, event=event)
        if check_nhits:
            counts = hits.loc[hits.particle_id != 0, "particle_id"].value_counts()
            known = pd.Index(particles.particle_id)
            unknown = counts.index.difference(known)
            if len(unknown):
                raise DataError(f"{len(unknown)} particle id(s) in hits/truth but not in particles "
                                f"(first: {int(unknown[0])})", file=hits_file, event=event, column="particle_id")
            expected = counts.reindex(known, fill_value=0).to_numpy()
            actual = particles.nhits.to_numpy()
            bad = expected != actual
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise DataError(f"nhits disagrees with the truth for {int(bad.sum())} particle(s) (first: particle "
                                f"{int(particles.particle_id.iloc[i])} has nhits={int(actual[i])} but "
                                f"{int(expected[i])} truth rows)", file=particles_file, event=event, column="nhits")
    if cells is not None and len(cells):
        check_finite(cells, CELLS, file=cells_file, event=event)
        orphan = ~cells.hit_id.isin(hits.hit_id)
        if orphan.any():
            raise DataError(f"{int(orphan.sum())} cell row(s) refer to hit ids not in hits (first: "
                            f"{int(cells.hit_id[orphan].iloc[0])})", file=cells_file, event=event, column="hit_id")


def group_by_event(df: pd.DataFrame, *, file) -> dict[int, np.ndarray]:
    """Rows of each event of a many-event CSV table: casts ``event_id`` to int64 in place (naming the
    file and column on a bad value) and returns {event_id: row positions}, ids ascending."""
    df["event_id"] = _cast(df["event_id"], np.dtype("int64"), file=file, event=None, column="event_id")
    return {int(k): v for k, v in df.groupby("event_id", sort=True).indices.items()}
