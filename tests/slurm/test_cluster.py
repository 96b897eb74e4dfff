"""The test cluster itself: CPU and GPU jobs run, sacct records them with partition and TRES, stop is clean."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

import slurm_cluster


def submit(cluster, *args: str) -> str:
    return cluster.run("sbatch", "--parsable", "-A", cluster.account, "--mem", "100", *args).stdout.strip()


def wait_done(cluster, job_ids, timeout: float = 60) -> dict[str, dict]:
    """sacct rows (JobID -> fields) once every job has ended."""
    deadline = time.monotonic() + timeout
    while True:
        out = cluster.run("sacct", "-X", "-n", "-P", "-j", ",".join(job_ids),
                          "--format=JobID,State,Partition,ExitCode,AllocTRES").stdout
        rows = {r.split("|")[0]: dict(zip(["id", "state", "partition", "exit", "tres"], r.split("|")))
                for r in out.splitlines() if r}
        # slurmdbd records a job's end before its partition: wait for both.
        if len(rows) == len(job_ids) and all(r["state"] not in ("PENDING", "RUNNING") and r["partition"]
                                             for r in rows.values()):
            return rows
        assert time.monotonic() < deadline, f"jobs not done after {timeout} s: {rows}"
        time.sleep(0.5)


def test_cpu_and_gpu_jobs_complete_and_are_accounted(slurm, tmp_path):
    cpu = submit(slurm, "-o", f"{tmp_path}/%j.out", "--wrap", "echo partition=$SLURM_JOB_PARTITION")
    gpu = submit(slurm, "-p", "gpu", "--gpus=1", "-o", f"{tmp_path}/%j.out",
                 "--wrap", "echo partition=$SLURM_JOB_PARTITION gpus=$SLURM_GPUS")
    rows = wait_done(slurm, [cpu, gpu])
    assert rows[cpu]["state"] == "COMPLETED" and rows[cpu]["exit"] == "0:0"
    assert rows[gpu]["state"] == "COMPLETED" and rows[gpu]["exit"] == "0:0"
    assert rows[cpu]["partition"] == "cpu" and "gres/gpu" not in rows[cpu]["tres"]
    assert rows[gpu]["partition"] == "gpu" and "gres/gpu=1" in rows[gpu]["tres"]
    assert (tmp_path / f"{cpu}.out").read_text().strip() == "partition=cpu"
    assert (tmp_path / f"{gpu}.out").read_text().strip() == "partition=gpu gpus=1"


def test_failed_job_and_unknown_account_are_reported(slurm, tmp_path):
    failed = submit(slurm, "-o", f"{tmp_path}/%j.out", "--wrap", "exit 3")
    assert wait_done(slurm, [failed])[failed]["state"] == "FAILED"
    # Associations are enforced: a job under an account sacctmgr does not know is refused at submission.
    proc = slurm.run("sbatch", "-A", "no-such-account", "--wrap", "true", check=False)
    assert proc.returncode != 0 and "account" in proc.stderr.lower()


def test_stop_ends_running_jobs_and_only_its_daemons(tmp_path):
    """A second, accounting-free cluster: a running job is cancelled on stop, nothing of ours survives."""
    reason = slurm_cluster.unavailable_reason(accounting=False)
    if reason:
        pytest.skip(reason)
    d = Path(tempfile.mkdtemp(prefix="tp-slurm-", dir="/tmp"))
    cluster = slurm_cluster.start(d, accounting=False)
    try:
        job = submit(cluster, "-o", f"{tmp_path}/%j.out", "--wrap", "sleep 300")
        deadline = time.monotonic() + 30
        while cluster.run("squeue", "-h", "-j", job, "-o", "%T").stdout.strip() != "RUNNING":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        conf = f"SLURM_CONF={cluster.conf}".encode()
        assert slurm_cluster._job_processes(conf)  # slurmstepd and the job script
        pids = [x["pid"] for x in cluster.daemons]
    finally:
        stopped = slurm_cluster.stop(d)
    assert set(stopped) == {"munged", "slurmctld", "slurmd"}
    assert not slurm_cluster._job_processes(conf)
    assert all(not os.path.exists(f"/proc/{p}") for p in pids)
    assert not (d / "daemons.json").exists() and (d / "log" / "slurmctld.log").exists()
    shutil.rmtree(d)
