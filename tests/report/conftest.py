"""Fixtures of the report tests: a fake results tree, built once per module."""

from __future__ import annotations

import pytest
from report_fakes import write_fake_results


@pytest.fixture(scope="module")
def fake_results(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    metrics = write_fake_results(root)
    return root, metrics
