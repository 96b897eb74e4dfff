"""Shared fixtures: the real TrackML event in ../shared/data/trackml, threads pinned to one."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# pytest runs with --import-mode=importlib (test files in different folders share basenames), so the
# helper modules beside the tests (uniquely named: metrics_reference, report_fakes, ...) are put on
# sys.path explicitly.
for _d in sorted(p for p in Path(__file__).parent.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
    if str(_d) not in sys.path:
        sys.path.append(str(_d))
SHARED_TRACKML = Path(os.environ.get("TRACKPIPE_SHARED_DATA", ROOT.parent / "shared" / "data")) / "trackml"

# Tests run with one thread per process (CI has 2 cores; oversubscription slows runs 2-100x).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")


def _require_shared(path: Path) -> Path:
    if path.exists():
        return path
    if os.environ.get("CI", "").lower() in ("1", "true"):
        pytest.fail(f"shared test data missing in CI: {path}")
    pytest.skip(f"shared test data not present: {path}")


@pytest.fixture(scope="session")
def trackml_dir() -> Path:
    """Directory holding event000000001-*.csv.gz and detectors.csv.gz (real, sub-sampled TrackML)."""
    _require_shared(SHARED_TRACKML / "event000000001-hits.csv.gz")
    return SHARED_TRACKML


@pytest.fixture(scope="session")
def detectors_csv(trackml_dir) -> Path:
    return _require_shared(trackml_dir / "detectors.csv.gz")


@pytest.fixture(scope="session")
def trackml_event(trackml_dir):
    from trackpipe.io.trackml import TrackMLSource

    return TrackMLSource(trackml_dir).read_event(1)


@pytest.fixture(scope="session", autouse=True)
def _torch_threads():
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    torch.set_num_threads(1)
