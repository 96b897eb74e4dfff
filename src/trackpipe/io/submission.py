"""Submission files: `event_id, hit_id, track_id` (int64), every hit of every event exactly once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError
from ..schema import SUBMISSION
from .atomic import atomic_path
from .validate import _cast, require_columns


def read_submission(path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise DataError("no such submission file", file=path)
    try:
        df = pd.read_csv(path, header=0, index_col=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, EOFError, OSError) as e:
        raise DataError(f"not a valid CSV file: {e}", file=path) from None
    require_columns(df, SUBMISSION.names, file=path)
    out = pd.DataFrame({c: _cast(df[c], np.dtype("int64"), file=path, event=None, column=c) for c in SUBMISSION.names})
    check_submission(out, file=path)
    return out


def check_submission(df: pd.DataFrame, *, file="<submission>") -> None:
    require_columns(df, SUBMISSION.names, file=file)
    if (df.track_id < 0).any():
        bad = df[df.track_id < 0].iloc[0]
        raise DataError(f"negative track id {int(bad.track_id)}", file=file, event=int(bad.event_id), column="track_id")
    dup = df.duplicated(["event_id", "hit_id"], keep=False)
    if dup.any():
        bad = df[dup].iloc[0]
        raise DataError(f"hit {int(bad.hit_id)} appears {int(dup.sum())} times", file=file, event=int(bad.event_id),
                        column="hit_id")


def write_submission(path, df: pd.DataFrame) -> Path:
    out = pd.DataFrame({c: df[c].to_numpy(np.int64) for c in SUBMISSION.names})
    check_submission(out, file=path)
    with atomic_path(path) as tmp:
        out.to_csv(tmp, index=False)
    return Path(path)
