"""The DAG: lint-clean, plans every shipped config, and reruns exactly what a config change touches."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

CONFIGS = ["config/config.yaml", "config/paper.yaml"]


def run(exe, env, workdir, *args, check=True):
    proc = subprocess.run([exe, *args], cwd=workdir, env=env(), capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def planned_jobs(exe, env, workdir, *args) -> set[tuple[str, str]]:
    """(rule, wildcards) of every job a dry run would execute."""
    out = run(exe, env, workdir, "-n", "--cores", "1", *args).stdout
    jobs, rule = set(), None
    for line in out.splitlines():
        m = re.match(r"^(?:local)?rule (\S+):$", line.strip())
        if m:
            rule = m.group(1)
            jobs.add((rule, ""))
            continue
        m = re.match(r"^wildcards: (.*)$", line.strip())
        if m and rule:
            jobs.discard((rule, ""))
            jobs.add((rule, m.group(1)))
            rule = None
    return jobs


def test_lint_clean(workdir, snakemake):
    exe, env = snakemake
    proc = run(exe, env, workdir, "--lint", check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.mark.parametrize("configfile", CONFIGS)
def test_shipped_configs_plan(workdir, snakemake, configfile):
    exe, env = snakemake
    cfg = yaml.safe_load((workdir / configfile).read_text())
    jobs = planned_jobs(exe, env, workdir, "--configfile", configfile)
    rules = {r for r, _ in jobs}
    assert {"simulate_shard", "merge_dataset", "evaluate", "tables_and_figures"} <= rules
    merged = {w for r, w in jobs if r == "merge_dataset"}
    assert merged == {f"dataset={d}" for d in cfg["datasets"]}
    shards = [w for r, w in jobs if r == "simulate_shard"]
    assert len(shards) == sum(int(s.get("shards", 1)) for s in cfg["datasets"].values())
    evaluated = {w for r, w in jobs if r == "evaluate"}
    assert evaluated == {f"dataset={d}, model={m}" for m, s in cfg["models"].items() for d in s["datasets"]}
    protocol = {w for r, w in jobs if r == "encdec_protocol"}
    assert protocol == {f"dataset={d}, model={m}" for m, s in cfg["models"].items() if s["family"] == "encdec"
                        for d in s["datasets"]}
    assert protocol  # both shipped configs run EncDec


def test_schema_names_bad_key(workdir, snakemake):
    exe, env = snakemake
    cfg = yaml.safe_load((workdir / "config/config.yaml").read_text())
    cfg["models"]["helix-dbscan"]["params"] = {"epsilon": 0.1}
    (workdir / "bad.yaml").write_text(yaml.safe_dump(cfg))
    proc = run(exe, env, workdir, "-n", "--configfile", "bad.yaml", check=False)
    assert proc.returncode != 0
    assert "epsilon" in proc.stdout + proc.stderr


TINY = {
    "seed": 3,
    "datasets": {
        "lin": {"kind": "redvid", "events": 20, "seed": 1, "split": [0.5, 0.25, 0.25], "plots": False,
                "redvid": {"track_types": ["linear"], "n_tracks": [5, 10]}},
        "hel": {"kind": "redvid", "events": 20, "seed": 2, "split": [0.5, 0.25, 0.25], "plots": False,
                "redvid": {"track_types": ["helical_expanding"], "n_tracks": [5, 10]}},
    },
    "models": {
        "base-a": {"family": "helix-dbscan", "datasets": ["lin", "hel"], "gpu": False, "params": {"eps": 0.02}},
        "base-b": {"family": "helix-dbscan", "datasets": ["lin", "hel"], "gpu": False, "params": {"eps": 0.03}},
    },
    "evaluate": {"bootstrap": 10},
    "reference_trackml": None,
}


@pytest.mark.slow
def test_incremental_reruns(workdir, snakemake):
    exe, env = snakemake
    # Only the tiny config: the shipped default must not be merged in.
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(TINY))
    run(exe, env, workdir, "--cores", "2")
    assert planned_jobs(exe, env, workdir) == set()

    # One model's setting -> that model's predict + evaluate on each dataset, and the summaries.
    cfg = yaml.safe_load(yaml.safe_dump(TINY))
    cfg["models"]["base-b"]["params"]["eps"] = 0.04
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    jobs = planned_jobs(exe, env, workdir)
    assert {(r, w) for r, w in jobs if r != "all"} == {
        ("predict_classical", "dataset=lin, model=base-b"), ("predict_classical", "dataset=hel, model=base-b"),
        ("evaluate", "dataset=lin, model=base-b"), ("evaluate", "dataset=hel, model=base-b"),
        ("tables_and_figures", ""),
    }

    # One dataset's setting -> that dataset and everything downstream of it, nothing of the other.
    cfg = yaml.safe_load(yaml.safe_dump(TINY))
    cfg["datasets"]["hel"]["events"] = 24
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    jobs = {(r, w) for r, w in planned_jobs(exe, env, workdir) if r != "all"}
    assert jobs == {
        ("simulate_shard", "dataset=hel, shard=0"), ("merge_dataset", "dataset=hel"),
        ("predict_classical", "dataset=hel, model=base-a"), ("predict_classical", "dataset=hel, model=base-b"),
        ("evaluate", "dataset=hel, model=base-a"), ("evaluate", "dataset=hel, model=base-b"),
        ("tables_and_figures", ""),
    }


def test_paper_config_plans_on_slurm_profile(workdir, snakemake):
    """`snakemake -n --profile profiles/slurm --configfile config/paper.yaml`: the full study, no Slurm needed."""
    exe, env = snakemake
    jobs = planned_jobs(exe, env, workdir, "--profile", "profiles/slurm", "--configfile", "config/paper.yaml")
    cfg = yaml.safe_load((workdir / "config/paper.yaml").read_text())
    shards = sum(int(s.get("shards", 1)) for s in cfg["datasets"].values())
    assert sum(1 for r, _ in jobs if r == "simulate_shard") == shards > 1000
    assert {r for r, _ in jobs} >= {"train", "predict", "predict_classical", "locality_study", "bench",
                                     "tables_and_figures"}
