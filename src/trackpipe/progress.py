"""Progress bars for long loops: shown on a terminal, silent in logs and CI unless asked for."""

from __future__ import annotations

import os
import sys


def progress(iterable, *, desc: str = "", unit: str = "it", total=None, enable: bool | None = None):
    from tqdm.auto import tqdm

    if enable is None:
        enable = sys.stderr.isatty() and os.environ.get("CI", "").lower() not in ("1", "true")
    return tqdm(iterable, desc=desc, unit=unit, total=total, disable=not enable, file=sys.stderr,
                mininterval=1.0, dynamic_ncols=True)
