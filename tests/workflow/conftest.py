from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


@pytest.fixture
def workdir(tmp_path) -> Path:
    """A scratch copy of the workflow (Snakefile, rules, scripts, schema, profiles, configs)."""
    for name in ("Snakefile", "workflow", "profiles", "config"):
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, tmp_path / name)
        else:
            shutil.copy(src, tmp_path / name)
    return tmp_path


@pytest.fixture
def snakemake():
    """(path of the snakemake executable, function building its environment)."""

    def env(**extra) -> dict:
        e = dict(os.environ)
        e.update({"OMP_NUM_THREADS": "1", **extra})
        # The package under test, whichever checkout this is.
        e["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), e.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        return e

    return SNAKEMAKE, env
