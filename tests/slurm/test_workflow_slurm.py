"""`snakemake --profile profiles/slurm` against a real one-node SLURM cluster (see slurm_cluster.py).

One tiny study (two REDVID datasets, the helix-DBSCAN baseline on CPU and a small trainable model that
asks for a GPU) runs end to end; then one model's setting changes and exactly its jobs rerun (polled with
`--slurm-status-command squeue`); then a training job is cancelled mid-way and snakemake's retry resumes it
from its checkpoint to the same weights as the uninterrupted run.

The user's profile is used as shipped: only its placeholders (account, partitions) and the sizes this
small node cannot grant are given on the command line. Every snakemake call has a hard timeout that kills
its process group (the slurm executor waits for its jobs on SIGTERM, so a hang would otherwise hang CI).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import torch
import yaml

from test_dag import planned_jobs

ROOT = Path(__file__).resolve().parents[2]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
RUN_TIMEOUT = 420  # seconds per snakemake run; the whole first run takes ~3 min on 2 busy cores

TINY = {
    "seed": 3,
    # Job sizes come from the study's config (the profile sets none per rule): what this node can grant.
    "threads": {"train": 1, "predict": 1},
    "mem_mb": {"train": 1000, "predict": 1000},
    "datasets": {
        "lin": {"kind": "redvid", "events": 40, "seed": 1, "split": [0.5, 0.25, 0.25], "plots": False,
                "redvid": {"track_types": ["linear"], "n_tracks": [5, 10]}},
        "hel": {"kind": "redvid", "events": 20, "seed": 2, "split": [0.5, 0.25, 0.25], "plots": False,
                "redvid": {"track_types": ["helical_expanding"], "n_tracks": [5, 10]}},
    },
    "models": {
        "base": {"family": "helix-dbscan", "datasets": ["hel"], "gpu": False, "params": {"eps": 0.02}},
        # ~0.1 s per epoch here: long enough to cancel mid-way, short enough for CI.
        "tiny-cla": {"family": "enccla", "datasets": ["lin"], "gpu": True, "epochs": 80,
                     "architecture": {"d_model": 16, "n_heads": 2, "d_ff": 32, "n_layers": 1, "dropout": 0.0},
                     "training": {"batch_size": 4, "lr": 0.002, "early_stopping": 0}},
    },
    "evaluate": {"bootstrap": 10},
    "reference_trackml": None,
}
MEM_MB = 1000  # every job of this study fits (max RSS ~170 MB); the light rules' fixed 4-8 GB may exceed a CI node
PARTITIONS = ROOT / "tests" / "slurm" / "partitions.yaml"
RULES = ["simulate_shard", "merge_dataset", "train", "predict", "predict_classical", "evaluate",
         "tables_and_figures"]


def slurm_args(cluster) -> list[str]:
    """profiles/slurm as shipped, its placeholders filled for this cluster on the command line: the account
    and the partition file. The study's config is given with --configfile, so it stands alone here too:
    in the main process and in every Slurm job (which replans with the same --configfiles)."""
    return [
        "--profile", "profiles/slurm", "--configfile", "tiny.yaml",
        "--default-resources", f"slurm_account={cluster.account}", "runtime=30", "gpu=0",
        "--slurm-partition-config", str(PARTITIONS),
        # The rules without a model keep fixed sizes (4-8 GB); this node's share is smaller.
        "--set-resources", *[f"{rule}:mem_mb={MEM_MB}" for rule in RULES if rule not in ("train", "predict")],
        "--slurm-init-seconds-before-status-checks", "2", "--latency-wait", "5",
    ]


@pytest.fixture(scope="module")
def study(slurm, tmp_path_factory):
    """A copy of the workflow with the tiny config beside the shipped one."""
    wd = tmp_path_factory.mktemp("slurm-study")
    for name in ("Snakefile", "workflow", "profiles", "config"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, wd / name)
    # Given with --configfile (slurm_args): the shipped config/config.yaml stays and must not leak in.
    (wd / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    return wd


def env_for(cluster) -> dict:
    env = cluster.env
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def start_snakemake(cluster, wd, *args) -> subprocess.Popen:
    log = open(wd / f"snakemake-{time.time_ns()}.log", "w+")
    proc = subprocess.Popen([SNAKEMAKE, *slurm_args(cluster), *args], cwd=wd, env=env_for(cluster),
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    proc.log = log
    return proc


def finish(cluster, proc, timeout: float = RUN_TIMEOUT) -> str:
    """Wait for snakemake; on timeout kill its process group and cancel its jobs, then fail."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        cluster.run("scancel", "--user", str(os.geteuid()), check=False)
        pytest.fail(f"snakemake did not finish within {timeout} s:\n{_output(proc)[-4000:]}")
    out = _output(proc)
    assert proc.returncode == 0, f"snakemake failed ({proc.returncode}):\n{out[-6000:]}"
    return out


def _output(proc) -> str:
    proc.log.flush()
    proc.log.seek(0)
    return proc.log.read()


def run_snakemake(cluster, wd, *args) -> list[dict]:
    """Run to completion; the sacct rows of the jobs it submitted."""
    first = last_job_id(cluster) + 1
    finish(cluster, start_snakemake(cluster, wd, *args))
    return accounted_jobs(cluster, first)


def last_job_id(cluster) -> int:
    out = cluster.run("sacct", "-X", "-n", "-P", "-a", "-S", "now-7days", "--format=JobIDRaw").stdout.split()
    return max((int(j) for j in out), default=0)


def accounted_jobs(cluster, first: int, timeout: float = 30) -> list[dict]:
    """sacct rows of jobs with id >= first, once slurmdbd has all their fields."""
    fields = ["id", "partition", "state", "exit", "tres", "comment"]
    deadline = time.monotonic() + timeout
    while True:
        out = cluster.run("sacct", "-X", "-n", "-P", "-a", "-S", "now-7days",
                          "--format=JobIDRaw,Partition,State,ExitCode,AllocTRES,Comment").stdout
        rows = [dict(zip(fields, r.split("|"))) for r in out.splitlines() if r]
        rows = [r for r in rows if int(r["id"]) >= first]
        if all(r["partition"] and r["state"] not in ("PENDING", "RUNNING") for r in rows):
            return rows
        assert time.monotonic() < deadline, f"sacct still incomplete after {timeout} s: {rows}"
        time.sleep(0.5)


def comment(rule: str, wildcards: str) -> str:
    """The comment the plugin gives a job's sbatch: rule_<rule>[_wildcards_<value>_<value>...]."""
    values = [w.split("=", 1)[1] for w in wildcards.split(", ") if w]
    return f"rule_{rule}" + (f"_wildcards_{'_'.join(values)}" if values else "")


def slurm_jobs(rows) -> Counter:
    """How many Slurm jobs each snakemake job (rule, wildcards) had, by the job comments."""
    return Counter(r["comment"] for r in rows)


def rule_of(row) -> str:
    return row["comment"].removeprefix("rule_").split("_wildcards_")[0]


def plan(cluster, wd, *args) -> set[tuple[str, str]]:
    return {j for j in planned_jobs(SNAKEMAKE, lambda: env_for(cluster), wd, *slurm_args(cluster), *args)
            if j[0] != "all"}


def weights(model_dir: Path) -> dict[str, torch.Tensor]:
    ckpt = torch.load(model_dir / "checkpoint.pt", map_location="cpu", weights_only=False)
    return {**{f"model.{k}": v for k, v in ckpt["model"].items()},
            **{f"best.{k}": v for k, v in ckpt["best_model"].items()}}


@pytest.fixture(scope="module")
def first_run(slurm, study):
    """The whole tiny study through the SLURM profile: (planned jobs, sacct rows, weights of tiny-cla)."""
    planned = plan(slurm, study)
    # The profile polls with squeue; this run covers sacct (accounting), the later ones squeue.
    rows = run_snakemake(slurm, study, "--slurm-status-command", "sacct")
    return planned, rows, weights(study / "results" / "models" / "lin" / "tiny-cla")


@pytest.mark.slow
def test_study_runs_one_slurm_job_per_rule_job(slurm, study, first_run):
    planned, rows, _ = first_run
    assert {r["state"] for r in rows} == {"COMPLETED"}, rows
    # 2 shards, 2 merges, train + predict (lin), predict_classical (hel), 2 evaluations, the tables
    assert len(planned) == 10
    assert slurm_jobs(rows) == Counter(comment(*job) for job in planned)  # each exactly once
    train = [r for r in rows if rule_of(r) == "train"]
    predict = [r for r in rows if rule_of(r) == "predict"]
    for r in train + predict:  # the model says gpu: true -> gpu partition, one GPU
        assert r["partition"] == "gpu" and "gres/gpu=1" in r["tres"], r
    for r in rows:
        if r not in train + predict:
            assert r["partition"] == "cpu" and "gres/gpu" not in r["tres"], r
    res = study / "results"
    assert (res / "tables" / "table1.md").read_text().count("tiny-cla") >= 1
    # The demo's datasets did not leak in (the Slurm jobs replanned with --configfile tiny.yaml alone).
    assert sorted(p.name for p in (res / "data").iterdir()) == ["hel", "lin"]
    for d, m in [("lin", "tiny-cla"), ("hel", "base")]:
        assert (res / "eval" / d / m / "metrics.json").stat().st_size > 0
    log = (res / "logs" / "train" / "lin" / "tiny-cla.log").read_text()
    assert "a GPU was requested" in log  # the job got its GPU from Slurm (a dummy device: it runs on CPU)


@pytest.mark.slow
def test_changed_model_reruns_only_its_jobs_polled_with_squeue(slurm, study, first_run):
    cfg = yaml.safe_load((study / "tiny.yaml").read_text())
    cfg["models"]["base"]["params"]["eps"] = 0.03
    (study / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    expected = {("predict_classical", "dataset=hel, model=base"), ("evaluate", "dataset=hel, model=base"),
                ("tables_and_figures", "")}
    assert plan(slurm, study) == expected
    rows = run_snakemake(slurm, study)  # the profile's squeue status
    assert {r["state"] for r in rows} == {"COMPLETED"}
    assert slurm_jobs(rows) == Counter(comment(*job) for job in expected)
    assert plan(slurm, study) == set()


@pytest.mark.slow
def test_cancelled_training_resumes_to_the_same_weights(slurm, study, first_run):
    """scancel (SIGTERM, SIGKILL after KillWait) mid-training; the retry resumes from the checkpoint."""
    _, _, uninterrupted = first_run
    model = study / "results" / "models" / "lin" / "tiny-cla"
    work = study / "results" / "train-work" / "lin" / "tiny-cla"
    shutil.rmtree(work)  # train from scratch (its completed checkpoint would make the rerun a copy)
    first = last_job_id(slurm) + 1
    # The profile's squeue status: the plugin (2.8.0) takes sacct's "CANCELLED by <uid>" for a running job and
    # would wait forever.
    proc = start_snakemake(slurm, study, "--forcerun", "train", "--retries", "1", str(model.relative_to(study)))
    try:
        deadline = time.monotonic() + 180
        while not (work / "checkpoint.pt").exists():  # at least one epoch done: something to resume
            assert proc.poll() is None and time.monotonic() < deadline, _output(proc)[-4000:]
            time.sleep(0.1)
        running = slurm.run("squeue", "-h", "-t", "R", "-o", "%i %k").stdout.split("\n")
        job = next(line.split()[0] for line in running if line.endswith(comment("train", "d=lin, m=tiny-cla")))
        slurm.run("scancel", job)
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    finish(slurm, proc, timeout=240)
    rows = accounted_jobs(slurm, first)
    # sacct writes "CANCELLED by <uid>".
    train = comment("train", "dataset=lin, model=tiny-cla")
    assert [(r["comment"], r["state"].split()[0]) for r in rows] == [(train, "CANCELLED"), (train, "COMPLETED")], rows
    log = (study / "results" / "logs" / "train" / "lin" / "tiny-cla.log").read_text()
    resumed_at = re.search(r"resumed from \S+ at epoch (\d+)", log)
    assert resumed_at, log[-3000:]
    assert 1 <= int(resumed_at.group(1)) < TINY["models"]["tiny-cla"]["epochs"]  # cancelled mid-way
    resumed = weights(model)
    assert resumed.keys() == uninterrupted.keys()
    for k, v in uninterrupted.items():
        assert torch.equal(resumed[k], v), k
