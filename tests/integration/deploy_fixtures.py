"""Real components for the deploy tests: an sshd and a single-node Slurm on loopback, each
started here with throwaway keys and config in a temporary folder and stopped by PID."""

from __future__ import annotations

import getpass
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import require_command


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_pid(p: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL, the process we started."""
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def wait_tcp(port: int, proc: subprocess.Popen, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited with code {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{what} did not listen on {port} within {timeout} s")


@dataclass
class Sshd:
    port: int
    user: str
    identity: Path
    known_hosts: Path


def start_sshd(tmp: Path) -> Iterator[Sshd]:
    sshd = require_command("sshd", "the SSH launcher test needs a real OpenSSH server")
    keygen = require_command("ssh-keygen")
    require_command("ssh")
    tmp.mkdir(parents=True, exist_ok=True)
    for key in ("host_key", "id_user"):
        subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(tmp / key)],
                       check=True)  # fmt: skip
    auth = tmp / "authorized_keys"
    auth.write_text((tmp / "id_user.pub").read_text())
    auth.chmod(0o600)
    port = free_port()
    user = getpass.getuser()
    hostpub = (tmp / "host_key.pub").read_text().split()
    kh = tmp / "known_hosts"
    kh.write_text(
        "".join(f"[{h}]:{port} {hostpub[0]} {hostpub[1]}\n" for h in ("127.0.0.1", "localhost"))
    )
    # Sessions run the account's shell as any sshd runs it ($SHELL -c COMMAND), with HOME an
    # empty folder of the test's: the account's own ~/.bashrc, which bash reads for commands
    # over ssh, is not the test's to run (this machine's starts pyenv: ~0.17 CPU-s and as much
    # wall time per session, about forty sessions per suite).
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    cfg = tmp / "sshd_config"
    cfg.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {tmp / 'host_key'}\nSetEnv HOME={home}\n"
        f"PidFile {tmp / 'sshd.pid'}\nAuthorizedKeysFile {auth}\nAllowUsers {user}\n"
        "PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\nLogLevel ERROR\n"
        "MaxStartups 50\nMaxSessions 50\n"
    )
    made_run = False
    if os.geteuid() == 0 and not Path("/run/sshd").exists():
        Path("/run/sshd").mkdir(mode=0o755)  # sshd's privilege-separation directory
        made_run = True
    log = open(tmp / "sshd.log", "wb")  # noqa: SIM115
    p = subprocess.Popen([sshd, "-D", "-e", "-f", str(cfg)], stdout=log, stderr=log,
                         stdin=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_tcp(port, p, "sshd")
        yield Sshd(port, user, tmp / "id_user", kh)
    finally:
        stop_pid(p)
        log.close()
        if made_run:
            try:
                Path("/run/sshd").rmdir()
            except OSError:
                pass


def ssh_cluster(s: Sshd, **extra) -> dict:
    return {
        "launcher": "ssh",
        "control_address": "127.0.0.1",
        "python": sys.executable,
        "ssh": {"port": s.port, "user": s.user, "identity_file": str(s.identity),
                "known_hosts_file": str(s.known_hosts), "strict_host_key_checking": "yes"},
        **extra,
    }  # fmt: skip


def write_json(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data, indent=1))
    return path


def experiment(events: int = 60, interval_ms: float = 5.0, **extra) -> dict:
    """A short 2-worker experiment (few events; no warmup beyond the first NTP sample)."""
    return {
        "name": "dep",
        "nodes": [
            {"name": "coordinator", "role": "coordinator", "offset_ms": 1.0, "drift_ppm": 10.0},
            {"name": "W0", "offset_ms": 3.0, "drift_ppm": 40.0},
            {"name": "W1", "offset_ms": -2.0, "drift_ppm": -25.0},
        ],
        "workload": {"events": events, "interval_ms": interval_ms},
        "run": {"warmup_s": 0, "drain_s": 0.3, "batch_rows": 50},
        "ntp": {"poll_s": 0.5},
        "commit_wait": {"delays_s": [0.05]},
        **extra,
    }


def start_slurm(tmp: Path) -> Iterator[dict[str, str]]:
    """munged + slurmctld + slurmd as a one-node cluster on loopback; yields the environment
    (SLURM_CONF) for slurm commands."""
    munged = require_command("munged", "the Slurm launcher test needs munge")
    ctld = require_command("slurmctld", "the Slurm launcher test needs a real Slurm")
    slurmd = require_command("slurmd", "the Slurm launcher test needs a real Slurm")
    for c in ("sbatch", "srun", "squeue", "scancel", "scontrol", "sinfo"):
        require_command(c, "slurm-client")
    tmp.mkdir(parents=True, exist_ok=True)
    tmp.chmod(0o700)
    key = tmp / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    sock = tmp / "munge.sock"
    host = socket.gethostname()
    cpus = 2
    conf = tmp / "slurm.conf"
    conf.write_text(
        "\n".join([
            "ClusterName=skewlabtest",
            f"SlurmctldHost={host}(127.0.0.1)",
            f"SlurmctldPort={free_port()}",
            f"SlurmdPort={free_port()}",
            "AuthType=auth/munge", f"AuthInfo=socket={sock}", "CredType=cred/munge",
            "SlurmUser=root", "SlurmdUser=root",
            f"StateSaveLocation={tmp / 'state'}", f"SlurmdSpoolDir={tmp / 'spool'}",
            f"SlurmctldPidFile={tmp / 'slurmctld.pid'}", f"SlurmdPidFile={tmp / 'slurmd.pid'}",
            f"SlurmctldLogFile={tmp / 'slurmctld.log'}", f"SlurmdLogFile={tmp / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none", "SwitchType=switch/none",
            "MpiDefault=none", "SchedulerType=sched/builtin", "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core", "ReturnToService=2", "MailProg=/bin/true",
            f"NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN",
            f"PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP "
            "OverSubscribe=FORCE:8",
            "",
        ])
    )  # fmt: skip
    (tmp / "state").mkdir()
    (tmp / "spool").mkdir()
    env = {**os.environ, "SLURM_CONF": str(conf)}
    for k in [k for k in env if k.startswith("SLURM_") and k != "SLURM_CONF"]:
        del env[k]
    procs: list[subprocess.Popen] = []
    logs = open(tmp / "daemons.log", "wb")  # noqa: SIM115
    try:
        procs.append(subprocess.Popen(
            [munged, "-F", "-f", f"--key-file={key}", f"--socket={sock}",
             f"--pid-file={tmp / 'munged.pid'}", f"--log-file={tmp / 'munged.log'}",
             f"--seed-file={tmp / 'munge.seed'}"],
            stdout=logs, stderr=logs, stdin=subprocess.DEVNULL,
        ))  # fmt: skip
        deadline = time.monotonic() + 15
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        for cmd in ([ctld, "-D", "-i"], [slurmd, "-D"]):
            procs.append(subprocess.Popen(cmd, env=env, stdout=logs, stderr=logs,
                                          stdin=subprocess.DEVNULL))  # fmt: skip
        deadline = time.monotonic() + 30
        state = ""
        while time.monotonic() < deadline:
            for p in procs:
                if p.poll() is not None:
                    raise AssertionError(f"{p.args[0]} exited with {p.returncode}; see {tmp}")
            r = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True,
                               text=True, timeout=10)  # fmt: skip
            state = r.stdout.strip()
            if state == "idle":
                break
            time.sleep(0.3)
        else:
            raise AssertionError(f"slurm node not idle within 30 s (state {state!r}); see {tmp}")
        yield env
    finally:
        for p in reversed(procs):
            stop_pid(p, grace=10)
        logs.close()


KEY_HEX = re.compile(rb"[0-9a-f]{64}")  # how a run's keys travel (node/secret.py): 32 bytes, hex


def processes() -> Iterator[tuple[Path, bytes]]:
    """(/proc/<pid>, its command line) of every process still there when read."""
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            yield d, (d / "cmdline").read_bytes()
        except OSError:
            continue


def key_like_cmdlines(seen: set[int] | None = None) -> list[str]:
    """skewlab processes whose command line holds a 64-hex-digit word (what a key looks like);
    adds the PIDs of node processes looked at to ``seen``."""
    found = []
    for d, cmd in processes():
        if seen is not None and b"skewlab.node" in cmd:
            seen.add(int(d.name))
        if b"skewlab" in cmd and KEY_HEX.search(cmd):
            found.append(cmd.decode(errors="replace"))
    return found


def files_holding(root: Path, needles: list[bytes] | None = None) -> list[str]:
    """Files under ``root`` that hold any of ``needles`` (default: a key-like hex word)."""
    out = []
    for p in root.rglob("*"):
        if p.is_file():
            data = p.read_bytes()
            if (any(n in data for n in needles) if needles is not None
                    else KEY_HEX.search(data)):  # fmt: skip
                out.append(str(p))
    return out


def check_measured_truth(res: Path, nodes: tuple[str, ...], exact: bool) -> None:
    """A deploy recorded measured truth by default (issue 18 item 4): metadata.json names the
    reference and the prober's settings, every node's truth trace came back, and the analysis
    gave every receipt and send an interval (containing the exact truth when there is one)."""
    import json

    meta = json.loads((res / "metadata.json").read_text())
    mt = meta["measured_truth"]
    assert mt["enabled"] is True and mt["reference"], mt
    assert mt["reference_kind"].startswith("embedded") and mt["prober"]["rate_hz"] == 10.0
    assert mt["max_drift_ppm"] == 500.0
    stats = json.loads((res / "stats.json").read_text())
    st = stats["measured_truth"]
    assert st["available"] and st["exact_truth"] is exact and st["reference"] == mt
    for n in nodes:
        assert list((res / "traces" / n).glob("truth-*.parquet")), n
        counts = meta["nodes"][n]["counts"] or json.loads(
            (res / "traces" / n / "counts.json").read_text()
        )  # a node stopped on a failure may not have reported them over the control channel
        assert counts["truth_exchanges"] > 0 and counts["truth_hardware_timestamps"] is False
        node = st["nodes"][n]
        assert node["exchanges"] == counts["truth_exchanges"]
        assert node["intervals"] > 0 and node["no_interval"] == 0, (n, node)
        if exact:
            cov = node["exact_coverage"]
            assert cov["k"] == cov["n"] == node["intervals"], (n, cov)
        else:
            assert node["exact_coverage"] is None
