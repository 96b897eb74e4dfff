"""A throw-away one-node SLURM cluster for tests: munged, MariaDB, slurmdbd, slurmctld, slurmd in one folder.

    python tests/slurm/slurm_cluster.py start  --dir /tmp/tp-slurm [--no-accounting]
    python tests/slurm/slurm_cluster.py status --dir /tmp/tp-slurm
    python tests/slurm/slurm_cluster.py stop   --dir /tmp/tp-slurm
    eval "$(python tests/slurm/slurm_cluster.py env --dir /tmp/tp-slurm)"   # SLURM_CONF for sbatch & co.

Everything lives under the cluster folder: generated configs (etc/), a fresh munge key, the MariaDB data
directory and socket, state and spool directories, logs, and `daemons.json` with the PID, session and
start time of every daemon started here. `stop` ends exactly those sessions (each daemon runs in its own
session, and the job processes slurmd starts stay in slurmd's), never anything found by name.

The node is this host, with its real CPUs and memory minus headroom, in two partitions on the same node:
`cpu` (default) and `gpu`. The node advertises `Gres=gpu:1`, backed by a dummy device file, so that
`--gpus=1` jobs schedule and account like on a GPU cluster (they run on CPU). Settings follow
REFERENCE.md section 9.4 (Slurm 22.05.8 on Debian 12, daemons as root, no systemd).
Needs root and the Debian packages slurm-wlm munge (and slurmdbd mariadb-server with accounting).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

# program -> Debian package that ships it
PROGRAMS = {"munged": "munge", "slurmctld": "slurmctld", "slurmd": "slurmd", "sbatch": "slurm-client",
            "sinfo": "slurm-client", "scontrol": "slurm-client"}
ACCOUNTING_PROGRAMS = {"slurmdbd": "slurmdbd", "sacct": "slurm-client", "sacctmgr": "slurm-client",
                       "mariadbd": "mariadb-server", "mariadb-install-db": "mariadb-server", "mariadb": "mariadb-client"}
APT_PACKAGES = "slurm-wlm munge slurmdbd mariadb-server"
ACCOUNT = "trackpipe"
SBIN_DIRS = ("/usr/sbin", "/sbin", "/usr/local/sbin")
MEMORY_HEADROOM = 0.15          # of RealMemory kept back for the OS and the test process
# Unix socket paths are limited to 107 bytes (sun_path); the munge socket is the longest.
MAX_SOCKET_PATH = 100


class ClusterError(RuntimeError):
    """The cluster could not be started or queried; the message names the log to read."""


def which(program: str) -> str | None:
    """Daemons live in sbin, which a non-login PATH may lack."""
    path = os.pathsep.join([os.environ.get("PATH", ""), *SBIN_DIRS])
    return shutil.which(program, path=path)


def missing(accounting: bool = True) -> list[str]:
    """'program (package)' for every required program that is not installed."""
    needed = dict(PROGRAMS, **(ACCOUNTING_PROGRAMS if accounting else {}))
    return [f"{p} ({pkg})" for p, pkg in needed.items() if which(p) is None]


def unavailable_reason(accounting: bool = True) -> str | None:
    """Why a cluster cannot be started here (None when it can be tried)."""
    if sys.platform != "linux":
        return "needs Linux"
    if os.geteuid() != 0:
        return "needs root (the daemons run as root, without systemd)"
    gone = missing(accounting)
    if gone:
        return f"not installed: {', '.join(gone)}; install with apt-get install {APT_PACKAGES}"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_time(pid: int) -> int | None:
    """Kernel start time of a process (clock ticks since boot): guards against a reused PID."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def _session(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[3])
    except (OSError, IndexError, ValueError):
        return None


def _node_hardware() -> tuple[int, int]:
    """(CPUs, RealMemory MB) of this host as slurmd sees them."""
    out = subprocess.run([which("slurmd"), "-C"], capture_output=True, text=True, timeout=30).stdout
    fields = dict(tok.split("=", 1) for tok in out.split() if "=" in tok)
    return int(fields["CPUs"]), int(fields["RealMemory"])


@dataclass
class Cluster:
    """A running cluster: its folder, names, and the environment that points Slurm commands at it."""

    dir: Path
    name: str
    node: str
    accounting: bool
    account: str = ACCOUNT
    cpus: int = 0
    memory_mb: int = 0
    daemons: list[dict] = field(default_factory=list)

    @property
    def conf(self) -> Path:
        return self.dir / "etc" / "slurm.conf"

    @property
    def env(self) -> dict:
        """os.environ plus SLURM_CONF (and sbin on PATH): for sbatch, snakemake and everything in between."""
        env = dict(os.environ, SLURM_CONF=str(self.conf))
        env["PATH"] = os.pathsep.join([env.get("PATH", ""), *SBIN_DIRS])
        return env

    def run(self, *cmd: str, timeout: float = 30, check: bool = True) -> subprocess.CompletedProcess:
        """A Slurm client command against this cluster."""
        proc = subprocess.run(list(cmd), env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise ClusterError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc

    def alive(self) -> bool:
        return bool(self.daemons) and all(_start_time(d["pid"]) == d["start_time"] for d in self.daemons)

    def stop(self) -> None:
        stop(self.dir)


# -- configuration files --------------------------------------------------------------------------


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def _slurm_conf(d: Path, name: str, node: str, cpus: int, memory: int, ports: dict, accounting: bool) -> str:
    acct = (f"AccountingStorageType=accounting_storage/slurmdbd\nAccountingStorageHost=127.0.0.1\n"
            f"AccountingStoragePort={ports['dbd']}\nAccountingStoragePass={d}/munge/munge.socket\n"
            f"AccountingStorageTRES=gres/gpu\n"
            f"AccountingStorageEnforce=associations\nJobAcctGatherType=jobacct_gather/linux\n"
            f"JobAcctGatherFrequency=30\n") if accounting else \
        "AccountingStorageType=accounting_storage/none\nJobAcctGatherType=jobacct_gather/none\n"
    return f"""# Generated by tests/slurm/slurm_cluster.py: a one-node test cluster (REFERENCE.md 9.4).
ClusterName={name}
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={ports['ctld']}
SlurmdPort={ports['slurmd']}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={d}/munge/munge.socket
CredType=cred/munge
StateSaveLocation={d}/state/ctld
SlurmdSpoolDir={d}/state/slurmd
SlurmctldPidFile={d}/run/slurmctld.pid
SlurmdPidFile={d}/run/slurmd.pid
SlurmctldLogFile={d}/log/slurmctld.log
SlurmdLogFile={d}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
LaunchParameters=use_interactive_step
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
GresTypes=gpu
# Finished jobs stay visible to squeue for 10 min (the plugin's squeue status polling needs them).
MinJobAge=600
# scancel: SIGTERM, then SIGKILL after KillWait seconds.
KillWait=10
ReturnToService=2
# Jobs without --mem get 512 MB per CPU, not the whole node.
DefMemPerCPU=512
SlurmdParameters=config_overrides
{acct}JobCompType=jobcomp/none
NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} Boards=1 SocketsPerBoard=1 CoresPerSocket={cpus} ThreadsPerCore=1 RealMemory={memory} Gres=gpu:1 State=UNKNOWN
PartitionName=cpu Nodes={node} Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes={node} MaxTime=INFINITE State=UP
"""


def _slurmdbd_conf(d: Path, ports: dict, db_password: str) -> str:
    return f"""# Generated by tests/slurm/slurm_cluster.py
AuthType=auth/munge
AuthInfo=socket={d}/munge/munge.socket
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort={ports['dbd']}
SlurmUser=root
LogFile={d}/log/slurmdbd.log
PidFile={d}/run/slurmdbd.pid
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={ports['mysql']}
StorageUser=slurm
StoragePass={db_password}
StorageLoc=slurm_acct_db
"""


# -- daemons ---------------------------------------------------------------------------------------


def _spawn(d: Path, name: str, cmd: list[str], env: dict) -> dict:
    """Start one daemon in the foreground, in its own session, output to log/<name>.out."""
    out = open(d / "log" / f"{name}.out", "ab")
    proc = subprocess.Popen(cmd, cwd=d, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)
    out.close()
    info = {"name": name, "pid": proc.pid, "start_time": _start_time(proc.pid), "cmd": cmd}
    _record(d, info)
    return info


def _record(d: Path, info: dict) -> None:
    path = d / "daemons.json"
    daemons = json.loads(path.read_text()) if path.exists() else []
    daemons.append(info)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(daemons, indent=1))
    tmp.replace(path)


def _wait(what: str, ok, timeout: float, log: Path, daemon: dict | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ok():
            return
        if daemon is not None and _start_time(daemon["pid"]) != daemon["start_time"]:
            raise ClusterError(f"{daemon['name']} exited while waiting for {what}; see {log}:\n{_tail(log)}")
        time.sleep(0.2)
    raise ClusterError(f"timed out after {timeout:.0f} s waiting for {what}; see {log}:\n{_tail(log)}")


def _tail(path: Path, n: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def _quiet(cmd: list[str], env: dict, timeout: float = 10) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


def _start_munge(d: Path, env: dict) -> dict:
    (d / "munge").mkdir(mode=0o700)
    key = d / "munge" / "munge.key"
    # A fresh key: no other munge domain can talk to this cluster.
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
    with os.fdopen(fd, "wb") as f:
        f.write(secrets.token_bytes(1024))
    sock = d / "munge" / "munge.socket"
    info = _spawn(d, "munged", [which("munged"), "--foreground", "--force", f"--socket={sock}", f"--key-file={key}",
                                f"--pid-file={d}/run/munged.pid", f"--log-file={d}/log/munged.log",
                                f"--seed-file={d}/munge/munged.seed"], env)
    _wait("the munge socket", sock.exists, 20, d / "log" / "munged.log", info)
    return info


def _start_mariadb(d: Path, env: dict, ports: dict, db_password: str) -> dict:
    datadir, sock, log = d / "db", d / "run" / "mysqld.sock", d / "log" / "mariadb.log"
    proc = subprocess.run([which("mariadb-install-db"), "--no-defaults", f"--datadir={datadir}", "--user=root",
                           "--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve"],
                          env=env, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise ClusterError(f"mariadb-install-db failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    # Small buffers, no fsync: a scratch database for a few hundred job records.
    info = _spawn(d, "mariadbd", [which("mariadbd"), "--no-defaults", f"--datadir={datadir}", f"--socket={sock}",
                                  f"--port={ports['mysql']}", "--bind-address=127.0.0.1", "--user=root",
                                  f"--pid-file={d}/run/mariadbd.pid", f"--log-error={log}", "--skip-log-bin",
                                  "--skip-name-resolve", "--innodb-buffer-pool-size=64M",
                                  "--innodb-lock-wait-timeout=900", "--innodb-flush-log-at-trx-commit=0"], env)
    client = [which("mariadb"), "--no-defaults", f"--socket={sock}", "-uroot"]
    _wait("MariaDB", lambda: (p := _quiet(client + ["-e", "SELECT 1"], env)) is not None and p.returncode == 0,
          60, log, info)
    sql = (f"CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '{db_password}'; "
           "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;")
    proc = subprocess.run(client + ["-e", sql], env=env, capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise ClusterError(f"creating the slurmdbd database user failed: {proc.stderr.strip()}")
    return info


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _sacctmgr(env: dict, *args: str) -> subprocess.CompletedProcess | None:
    return _quiet([which("sacctmgr"), "--immediate", *args], env, timeout=30)


def start(workdir, *, accounting: bool = True, timeout: float = 120) -> Cluster:
    """Start (or find running) the cluster in `workdir`; raise ClusterError naming the log when it fails."""
    reason = unavailable_reason(accounting)
    if reason:
        raise ClusterError(f"cannot start a SLURM cluster: {reason}")
    d = Path(workdir).resolve()
    if len(str(d / "munge" / "munge.socket")) > MAX_SOCKET_PATH:
        raise ClusterError(f"cluster folder {d} is too long for a Unix socket path; use a shorter one")
    running = load(d)
    if running is not None and running.alive() and running.accounting == accounting:
        if _quiet(["scontrol", "ping"], running.env) is not None:
            return running
    if running is not None or (d / "daemons.json").exists():
        stop(d)
    t0 = time.monotonic()
    for sub in ("etc", "log", "run", "state/ctld", "state/slurmd", "dev"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    node = socket.gethostname().split(".")[0]
    cpus, real_memory = _node_hardware()
    memory = int(real_memory * (1 - MEMORY_HEADROOM))
    name = f"tp{secrets.token_hex(3)}"     # fresh per start: its own records in slurmdbd
    ports = {k: _free_port() for k in ("ctld", "slurmd", "dbd", "mysql")}
    _write(d / "dev" / "gpu0", "")         # the dummy GPU device gres.conf points at
    _write(d / "etc" / "slurm.conf", _slurm_conf(d, name, node, cpus, memory, ports, accounting))
    _write(d / "etc" / "gres.conf", f"NodeName={node} Name=gpu File={d}/dev/gpu0\n")
    cluster = Cluster(dir=d, name=name, node=node, accounting=accounting, cpus=cpus, memory_mb=memory)
    env = cluster.env
    try:
        _start_munge(d, env)
        if accounting:
            db_password = secrets.token_hex(12)
            _write(d / "etc" / "slurmdbd.conf", _slurmdbd_conf(d, ports, db_password), 0o600)
            _start_mariadb(d, env, ports, db_password)
            dbd = _spawn(d, "slurmdbd", [which("slurmdbd"), "-D"], env)
            _wait("slurmdbd", lambda: _listening(ports["dbd"]), 60, d / "log" / "slurmdbd.log", dbd)
            for args in (("add", "cluster", name), ("add", "account", ACCOUNT, f"cluster={name}",
                                                     "description=trackpipe tests", "organization=trackpipe"),
                         ("add", "user", "root", f"account={ACCOUNT}", f"cluster={name}")):
                p = _sacctmgr(env, *args)
                if p is None or p.returncode != 0:
                    raise ClusterError(f"sacctmgr {' '.join(args)} failed: {p.stderr if p else 'timeout'}")
        ctld = _spawn(d, "slurmctld", [which("slurmctld"), "-D", "-i"], env)
        _wait("slurmctld (scontrol ping)", lambda: (p := _quiet(["scontrol", "ping"], env)) is not None
              and p.returncode == 0 and "UP" in p.stdout, timeout, d / "log" / "slurmctld.log", ctld)
        slurmd = _spawn(d, "slurmd", [which("slurmd"), "-D", "-N", node], env)
        _wait(f"node {node} idle (sinfo)", lambda: _node_state(env, node) == "idle", timeout,
              d / "log" / "slurmd.log", slurmd)
    except BaseException:
        stop(d, clean=False)
        raise
    cluster.daemons = json.loads((d / "daemons.json").read_text())
    _write(d / "cluster.json", json.dumps({"name": name, "node": node, "accounting": accounting, "cpus": cpus,
                                           "memory_mb": memory, "ports": ports,
                                           "start_seconds": round(time.monotonic() - t0, 1)}, indent=1))
    return cluster


def _node_state(env: dict, node: str) -> str | None:
    p = _quiet(["sinfo", "-h", "-N", "-n", node, "-o", "%t"], env)
    return p.stdout.strip().splitlines()[0].rstrip("*~#$@") if p and p.returncode == 0 and p.stdout.strip() else None


def load(workdir) -> Cluster | None:
    """The cluster recorded in `workdir` (running or not), or None."""
    d = Path(workdir).resolve()
    meta, daemons = d / "cluster.json", d / "daemons.json"
    if not meta.exists():
        return None
    m = json.loads(meta.read_text())
    return Cluster(dir=d, name=m["name"], node=m["node"], accounting=m["accounting"], cpus=m["cpus"],
                   memory_mb=m["memory_mb"], daemons=json.loads(daemons.read_text()) if daemons.exists() else [])


def stop(workdir, *, clean: bool = True, grace: float = 15) -> list[str]:
    """Cancel the cluster's jobs, end the daemons started in `workdir`, then remove runtime state.

    Signalled are only: the recorded daemons (same PID and start time), processes in their sessions,
    and processes started with this cluster's SLURM_CONF in their environment (slurmstepd and the
    job processes, which slurmd detaches into sessions of their own). Logs and configs are kept.
    """
    d = Path(workdir).resolve()
    path = d / "daemons.json"
    daemons = json.loads(path.read_text()) if path.exists() else []
    ours = {x["pid"]: x for x in daemons if _start_time(x["pid"]) == x["start_time"]}
    conf = f"SLURM_CONF={d / 'etc' / 'slurm.conf'}".encode()
    if "slurmctld" in {x["name"] for x in ours.values()}:
        env = dict(os.environ, SLURM_CONF=str(d / "etc" / "slurm.conf"))
        _quiet([which("scancel"), "--full", "--user", str(os.geteuid())], env)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and _job_processes(conf):
            time.sleep(0.2)
    stopped = []
    for x in reversed(daemons):  # reverse start order: slurmd first, the database last
        if x["pid"] in ours:
            _signal(x["pid"], signal.SIGTERM)
            stopped.append(x["name"])
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_start_time(p) is not None for p in ours):
        _reap(ours)
        time.sleep(0.1)
    leftovers = [p for p in _all_pids() if _session(p) in ours] + _job_processes(conf)
    for pid in leftovers:
        _signal(pid, signal.SIGKILL)
    _reap(ours)
    if clean:
        for sub in ("state", "db", "run", "munge", "dev"):
            shutil.rmtree(d / sub, ignore_errors=True)
        for f in ("daemons.json", "cluster.json"):
            (d / f).unlink(missing_ok=True)
    elif path.exists():
        path.replace(d / "daemons.stopped.json")
    return stopped


def _all_pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def _job_processes(conf_entry: bytes) -> list[int]:
    """PIDs whose environment holds exactly this cluster's SLURM_CONF (slurmstepd, job scripts)."""
    pids = []
    for pid in _all_pids():
        if pid == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        in_job = any(e.startswith(b"SLURM_JOB_ID=") for e in environ)
        if conf_entry in environ and (in_job or _cmdline(pid).startswith(b"slurmstepd")):
            pids.append(pid)
    return pids


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _reap(ours: dict) -> None:
    """Collect exited daemons that are children of this process (stop() in the process that started them)."""
    for pid in ours:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def status(workdir) -> dict:
    cluster = load(workdir)
    if cluster is None:
        return {"running": False, "reason": f"no cluster recorded in {workdir}"}
    alive = {x["name"]: _start_time(x["pid"]) == x["start_time"] for x in cluster.daemons}
    p = _quiet(["sinfo", "-h", "-o", "%P %a %D %t %C %G"], cluster.env)
    return {"running": all(alive.values()), "name": cluster.name, "daemons": alive, "slurm_conf": str(cluster.conf),
            "sinfo": p.stdout.strip().splitlines() if p and p.returncode == 0 else None}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["start", "stop", "status", "env"])
    ap.add_argument("--dir", required=True, help="cluster folder (short path: it holds Unix sockets)")
    ap.add_argument("--no-accounting", action="store_true", help="no slurmdbd/MariaDB (sacct unavailable)")
    a = ap.parse_args(argv)
    if a.command == "start":
        t0 = time.monotonic()
        try:
            c = start(a.dir, accounting=not a.no_accounting)
        except ClusterError as e:
            print(e, file=sys.stderr)
            return 1
        print(f"cluster {c.name} up in {time.monotonic() - t0:.1f} s; export SLURM_CONF={c.conf}")
    elif a.command == "stop":
        print("stopped:", " ".join(stop(a.dir)) or "nothing")
    elif a.command == "status":
        s = status(a.dir)
        print(json.dumps(s, indent=1))
        return 0 if s["running"] else 3
    else:
        c = load(a.dir)
        if c is None:
            print(f"no cluster in {a.dir}", file=sys.stderr)
            return 1
        print(f"export SLURM_CONF={c.conf}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
