"""The SLURM profile submits GPU training and CPU jobs with the flags the config asks for (fake sbatch on PATH).

tests/slurm/ runs the same profile on a real one-node Slurm; this one needs no Slurm installed."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import yaml

FAKE_SBATCH = """#!/usr/bin/env bash
echo "$*" >> "$FAKE_SLURM_LOG"
echo "$((1000 + $(wc -l < "$FAKE_SLURM_LOG")))"
"""
# Other Slurm commands the plugin calls: record and answer like an empty cluster.
FAKE_OTHER = """#!/usr/bin/env bash
echo "$(basename "$0") $*" >> "$FAKE_SLURM_LOG.calls"
case "$(basename "$0")" in sacctmgr) echo "<your-account>";; esac
"""

CONFIG = {
    "seed": 1,
    "datasets": {"toy": {"kind": "redvid", "events": 10}, "fresh": {"kind": "redvid", "events": 10}},
    "models": {"enccla": {"family": "enccla", "datasets": ["toy"], "runtime": 30},
               "cpu-cla": {"family": "enccla", "datasets": ["toy"], "gpu": False},
               "helix-dbscan": {"family": "helix-dbscan", "datasets": ["toy"]}},
    "threads": {"train": 3},
    "mem_mb": {"train": 12000},
    "evaluate": {"pt_min": 0.9},
}


def test_fake_sbatch_gpu_train_and_cpu_job(workdir, tmp_path, snakemake):
    exe, snakemake_env = snakemake
    bindir = tmp_path / "fakebin"
    bindir.mkdir()
    (bindir / "sbatch").write_text(FAKE_SBATCH)
    for cmd in ("squeue", "sacct", "sacctmgr", "scancel", "sinfo", "scontrol", "sshare"):
        (bindir / cmd).write_text(FAKE_OTHER)
    for f in bindir.iterdir():
        f.chmod(0o755)
    (workdir / "test.yaml").write_text(yaml.safe_dump(CONFIG))
    # Dataset `toy` exists already (its stores newer than its shard), so its training job is ready to submit.
    (workdir / "results" / "shards" / "toy" / "0").mkdir(parents=True)
    data = workdir / "results" / "data" / "toy"
    data.mkdir(parents=True)
    os.utime(data, (time.time() + 10, time.time() + 10))
    log = tmp_path / "sbatch.log"
    env = snakemake_env(PATH=f"{bindir}{os.pathsep}{os.environ['PATH']}", FAKE_SLURM_LOG=str(log))
    proc = subprocess.Popen(
        [exe, "--profile", "profiles/slurm", "--configfile", "test.yaml", "--rerun-triggers", "mtime",
         "--retries", "0", "results/models/toy/enccla", "results/models/toy/cpu-cla", "results/shards/fresh/0"],
        cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            if log.exists() and len(log.read_text().splitlines()) >= 3:
                break
            time.sleep(0.5)
    finally:
        # The slurm executor waits for its jobs on SIGTERM; a stub cluster never finishes them.
        os.killpg(proc.pid, signal.SIGKILL)
        output = proc.communicate()[0].decode(errors="replace")
    lines = log.read_text().splitlines() if log.exists() else []
    assert len(lines) == 3, output[-3000:]
    gpu_train = next(line for line in lines if "--comment rule_train_wildcards_toy_enccla " in line)
    cpu_train = next(line for line in lines if "--comment rule_train_wildcards_toy_cpu-cla " in line)
    cpu = next(line for line in lines if "--comment rule_simulate_shard_wildcards_fresh_0 " in line)
    # The model's gpu key decides the GPU; the profile's partition file then picks the GPU partition.
    assert "--gpus=1" in gpu_train and "--gres" not in gpu_train and "-p <gpu-partition>" in gpu_train
    # Threads, memory and time limit from the config (the profile sets none per rule).
    assert "--cpus-per-task=3" in gpu_train and "-t 30" in gpu_train and "--mem 12000" in gpu_train
    assert "-A <your-account>" in gpu_train
    # gpu: false takes training off the GPU: no GPU asked, the CPU partition.
    assert "--gpus" not in cpu_train and "-p <cpu-partition>" in cpu_train and "--cpus-per-task=3" in cpu_train
    assert "-t 60" in cpu_train
    assert "--gpus" not in cpu and "--gres" not in cpu
    assert "-p <cpu-partition>" in cpu and "--cpus-per-task=1" in cpu
