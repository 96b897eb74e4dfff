"""A one-node SLURM cluster for the tests in this folder, started once per session (see slurm_cluster.py)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

import slurm_cluster

# .ci/run sets this where it installed the packages as root: there a cluster that cannot start is a failure.
REQUIRE = "TRACKPIPE_REQUIRE_SLURM"


def _unavailable(reason: str):
    if os.environ.get(REQUIRE, "") in ("1", "true"):
        pytest.fail(f"{REQUIRE} is set but {reason}")
    pytest.skip(reason)


def _start(accounting: bool):
    reason = slurm_cluster.unavailable_reason(accounting)
    if reason:
        _unavailable(f"no SLURM test cluster: {reason}")
    # Short path under /tmp: the folder holds Unix sockets (107-byte limit).
    d = Path(tempfile.mkdtemp(prefix="tp-slurm-", dir="/tmp"))
    try:
        cluster = slurm_cluster.start(d, accounting=accounting)
    except slurm_cluster.ClusterError as e:
        _unavailable(f"the SLURM test cluster did not start here: {e}")
    return cluster


@pytest.fixture(scope="session")
def slurm():
    """A running cluster with accounting (slurmdbd + MariaDB): sacct works, account `trackpipe` exists."""
    cluster = _start(accounting=True)
    yield cluster
    slurm_cluster.stop(cluster.dir)
    shutil.rmtree(cluster.dir, ignore_errors=True)
