"""A config given on the command line stands alone: no key of the embedded default leaks into it."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings, StorageSettings
from snakemake.utils import validate

TINY = {
    "seed": 3,
    "datasets": {"lin": {"kind": "redvid", "events": 20, "seed": 1, "split": [0.5, 0.25, 0.25], "plots": False,
                         "redvid": {"track_types": ["linear"], "n_tracks": [5, 10]}}},
    "models": {"base": {"family": "helix-dbscan", "datasets": ["lin"], "gpu": False},
               "cla": {"family": "enccla", "datasets": ["lin"], "epochs": 2}},
    "evaluate": {"bootstrap": 10},
}


def effective_config(workdir: Path, configfiles: list[str]) -> dict:
    """The config the Snakefile ends up with (what every rule and every cluster job plans with)."""
    with SnakemakeApi(OutputSettings(quiet=True)) as api:
        wf = api.workflow(resource_settings=ResourceSettings(cores=1), storage_settings=StorageSettings(),
                          config_settings=ConfigSettings(configfiles=[workdir / f for f in configfiles]),
                          snakefile=workdir / "Snakefile", workdir=workdir)
        return copy.deepcopy(dict(wf._workflow.config))


def expected(workdir: Path, data: dict) -> dict:
    """The given file plus the schema's defaults, and nothing else."""
    cfg = copy.deepcopy(data)
    validate(cfg, str(workdir / "workflow/schemas/config.schema.yaml"))
    return cfg


@pytest.mark.parametrize("configfile", ["tiny.yaml", "config/paper.yaml"])
def test_given_config_is_not_merged_into_the_default(workdir, configfile):
    if configfile == "tiny.yaml":
        (workdir / configfile).write_text(yaml.safe_dump(TINY))
    data = yaml.safe_load((workdir / configfile).read_text())
    got = effective_config(workdir, [configfile])
    assert got == expected(workdir, data)
    default = yaml.safe_load((workdir / "config/config.yaml").read_text())
    if configfile == "tiny.yaml":
        # The demo's datasets, thread counts and reference event would all have leaked in before.
        assert set(got["datasets"]) == {"lin"} and "threads" not in got and "reference_trackml" not in got
        assert "max_minutes" not in got["models"]["cla"]
    else:
        # paper.yaml states its own budgets; none of the demo's minutes reach a paper model.
        for name, section in got["models"].items():
            assert section.get("max_minutes") is None, name
            if section["family"] != "helix-dbscan":
                assert section["on_budget"] == "resume" and section["runtime"] >= 1440, name
        assert got["models"]["unet"]["architecture"]["interpolate_points"] == 10  # the paper's, not the default's 0
        assert default["models"]["unet"]["architecture"]["interpolate_points"] == 0


def test_without_configfile_the_embedded_default_is_read(workdir):
    data = yaml.safe_load((workdir / "config/config.yaml").read_text())
    assert effective_config(workdir, []) == expected(workdir, data)
