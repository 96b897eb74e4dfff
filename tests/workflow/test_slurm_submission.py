"""The SLURM profile submits GPU training and CPU jobs with the right flags (fake sbatch on PATH)."""

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
    "models": {"enccla": {"family": "enccla", "datasets": ["toy"]},
               "helix-dbscan": {"family": "helix-dbscan", "datasets": ["toy"]}},
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
         "--retries", "0", "results/models/toy/enccla", "results/shards/fresh/0"],
        cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            if log.exists() and len(log.read_text().splitlines()) >= 2:
                break
            time.sleep(0.5)
    finally:
        # The slurm executor waits for its jobs on SIGTERM; a stub cluster never finishes them.
        os.killpg(proc.pid, signal.SIGKILL)
        output = proc.communicate()[0].decode(errors="replace")
    lines = log.read_text().splitlines() if log.exists() else []
    assert len(lines) == 2, output[-3000:]
    train = next(l for l in lines if "rule_train" in l)
    cpu = next(l for l in lines if "rule_simulate_shard" in l)
    assert "--gpus=1" in train and "--gres" not in train
    assert "-p <gpu-partition>" in train and "--cpus-per-task=16" in train and "-t 240" in train
    assert "--mem 32000" in train and "-A <your-account>" in train
    assert "--gpus" not in cpu and "--gres" not in cpu
    assert "-p <cpu-partition>" in cpu and "--cpus-per-task=1" in cpu
