"""Real servers on loopback for the team tests: an OpenSSH server (the lab machine holding the DVC remote and the git
remote) and a single-node Slurm cluster (munge, slurmctld, slurmd). Each runs from a temporary folder with throwaway
keys and stops with its fixture; where the Debian packages are missing or a daemon cannot start, the test skips and
says why."""
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _which(program: str) -> str | None:
    """Daemons live in sbin, which a non-root PATH often lacks."""
    return shutil.which(program, path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")


def _need(*programs: str, package: str) -> None:
    missing = [p for p in programs if not _which(p)]
    if missing:
        pytest.skip(f"{', '.join(missing)} not found: install Debian's {package} (`apt-get install {package}`)")


def _wait_until(ready, seconds: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + seconds
    while not ready():
        if time.monotonic() > deadline:
            tail = log.read_text()[-2000:] if log.is_file() else "(no log)"
            pytest.skip(f"{what} did not start within {seconds:.0f} s on this machine; its log ends:\n{tail}")
        time.sleep(0.2)


def _stop(pid_file: Path) -> None:
    try:
        os.kill(int(pid_file.read_text().split()[0]), signal.SIGTERM)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        pass


def keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)], check=True)
    return path


@dataclass
class SSHServer:
    folder: Path
    port: int
    user: str
    host_key: Path
    authorized_keys: Path

    def teammate_home(self, home: Path, alias: str = "lab") -> Path:
        """A teammate's home: their own key (authorised on the server), the server's host key in known_hosts, and
        `Host <alias>` in ~/.ssh/config, as a lab machine is usually set up. DVC's SSH client (asyncssh) reads them
        from $HOME; OpenSSH's `ssh`, which git runs, from the passwd entry's home, hence `-F` in core.sshCommand."""
        ssh = home / ".ssh"
        ssh.mkdir(parents=True)
        key = keygen(ssh / "id_ed25519")
        with self.authorized_keys.open("a") as keys:
            keys.write(key.with_suffix(".pub").read_text())
        (ssh / "known_hosts").write_text(f"[127.0.0.1]:{self.port} {self.host_key.with_suffix('.pub').read_text()}")
        (ssh / "config").write_text(f"Host {alias}\n  HostName 127.0.0.1\n  Port {self.port}\n  User {self.user}\n"
                                    f"  IdentityFile {key}\n  UserKnownHostsFile {ssh / 'known_hosts'}\n")
        return home


def start_sshd(folder: Path) -> SSHServer:
    """sshd on 127.0.0.1 at a free port, public keys only, SFTP in-process; the caller stops it with `stop_sshd`."""
    _need("sshd", "ssh", "ssh-keygen", package="openssh-server")
    folder.mkdir(parents=True, exist_ok=True)
    server = SSHServer(folder, free_port(), os.environ.get("USER") or subprocess.run(
        ["id", "-un"], capture_output=True, text=True).stdout.strip(), keygen(folder / "host_key"),
        folder / "authorized_keys")
    server.authorized_keys.touch()
    config = folder / "sshd_config"
    config.write_text(f"ListenAddress 127.0.0.1\nPort {server.port}\nHostKey {server.host_key}\n"
                      f"AuthorizedKeysFile {server.authorized_keys}\nPidFile {folder / 'sshd.pid'}\n"
                      "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
                      "UsePAM no\nStrictModes no\nSubsystem sftp internal-sftp\n")
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)   # the privilege-separation folder sshd insists on
    log = folder / "sshd.log"
    started = subprocess.run([_which("sshd"), "-f", str(config), "-E", str(log)], capture_output=True, text=True)
    if started.returncode != 0:
        pytest.skip(f"sshd could not start here ({(started.stderr or log.read_text()).strip()[:300]})")

    def listening() -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", server.port)) == 0
    _wait_until(listening, 10, "sshd", log)
    return server


def stop_sshd(server: SSHServer) -> None:
    _stop(server.folder / "sshd.pid")


@dataclass
class SlurmCluster:
    folder: Path
    env: dict

    def sbatch(self, *args: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
        return subprocess.run(["sbatch", *args], cwd=cwd, capture_output=True, text=True, env={**env, **self.env})


def start_slurm(folder: Path) -> SlurmCluster:
    """munged, slurmctld and slurmd of a one-node cluster named loopback, every file in `folder`, the ports free
    ones, this user as SlurmUser; no cgroups (proctrack/linuxproc, task/none), which containers often lack."""
    _need("munged", package="munge")
    _need("slurmctld", "slurmd", "sbatch", "sinfo", package="slurm-wlm")
    for sub in ("munge", "state", "spool", "log"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    key = folder / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    socket_path = folder / "munge" / "munge.socket"
    munged = subprocess.run([_which("munged"), f"--key-file={key}", f"--socket={socket_path}",
                             f"--pid-file={folder / 'munge' / 'munged.pid'}", f"--log-file={folder / 'munge' / 'log'}",
                             f"--seed-file={folder / 'munge' / 'seed'}", "--force"], capture_output=True, text=True)
    if munged.returncode != 0:
        pytest.skip(f"munged could not start here: {munged.stderr.strip()[:300]}")
    user = subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
    host = socket.gethostname().split(".")[0]
    memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    conf = folder / "slurm.conf"
    conf.write_text("\n".join([
        "ClusterName=loopback", f"SlurmctldHost={host}(127.0.0.1)", f"SlurmUser={user}", f"SlurmdUser={user}",
        "AuthType=auth/munge", f"AuthInfo=socket={socket_path}", "CredType=cred/munge",
        f"SlurmctldPort={free_port()}", f"SlurmdPort={free_port()}",
        f"StateSaveLocation={folder / 'state'}", f"SlurmdSpoolDir={folder / 'spool'}",
        f"SlurmctldPidFile={folder / 'slurmctld.pid'}", f"SlurmdPidFile={folder / 'slurmd.pid'}",
        f"SlurmctldLogFile={folder / 'log' / 'slurmctld.log'}", f"SlurmdLogFile={folder / 'log' / 'slurmd.log'}",
        "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none", "SchedulerType=sched/builtin",
        "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core", "MpiDefault=none", "ReturnToService=2",
        f"NodeName={host} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} RealMemory={memory_mb // 2} State=UNKNOWN",
        "PartitionName=loopback Nodes=ALL Default=YES MaxTime=INFINITE State=UP", ""]))
    cluster = SlurmCluster(folder, {"SLURM_CONF": str(conf)})
    env = {**os.environ, **cluster.env}
    for daemon in ("slurmctld", "slurmd"):
        started = subprocess.run([_which(daemon)], capture_output=True, text=True, env=env)
        if started.returncode != 0:
            stop_slurm(cluster)
            pytest.skip(f"{daemon} could not start here: {started.stderr.strip()[:300]}")

    def node_idle() -> bool:
        state = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, env=env).stdout
        return state.strip() == "idle"
    try:
        _wait_until(node_idle, 30, "the Slurm node", folder / "log" / "slurmd.log")
    except BaseException:
        stop_slurm(cluster)
        raise
    return cluster


def stop_slurm(cluster: SlurmCluster) -> None:
    for pid_file in ("slurmd.pid", "slurmctld.pid", "munge/munged.pid"):
        _stop(cluster.folder / pid_file)
