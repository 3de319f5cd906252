"""SSH launcher: each node is ``ssh HOST exec PYTHON -m skewlab.node ...`` (OpenSSH client,
key-based, BatchMode so it never prompts), all hosts at once.

The local ``ssh`` process carries the node's output into logs/<node>.log. The node reports its
own PID in its hello; cleanup signals exactly that PID on its host (through the agent, which
checks the PID is still that node), then ends the local ssh client. A node whose control
connection drops stops by itself, so a lost launcher leaves nothing behind. Every word of a
remote command is shell-quoted.
"""

from __future__ import annotations

import io
import shlex
import subprocess
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from skewlab.deploy.cluster import HostSpec
from skewlab.deploy.orchestrator import LaunchError, NodeProc
from skewlab.deploy.remote import AGENT_TIMEOUT_S, RemoteLauncher, run_capture

COLLECT_TIMEOUT_S = 600.0  # copying one host's traces back


class SshNode(NodeProc):
    """A node on a host reached by SSH; the carrier is the local ssh client."""

    def __init__(self, launcher: SshLauncher, host: HostSpec, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.launcher = launcher
        self.host = host

    def where(self) -> str:
        pid = self.pid
        return f"pid {pid} on {self.host.name}" if pid else f"ssh pid {self.popen.pid}"

    def exit_text(self, rc: int) -> str:
        if rc == 255:
            return "ssh exited with code 255 (connection failed or the node died by a signal)"
        return super().exit_text(rc)

    def _remote_signal(self, sig: str) -> None:
        if self.pid is None:
            return
        self.launcher.run_agent(
            self.host, ["signal", "--pid", str(self.pid), "--node", self.name, "--signal", sig],
            timeout=15,
        )  # fmt: skip

    def terminate(self) -> None:
        if self.pid is None:  # it never said hello: all we have is the local ssh client
            super().terminate()
        self._remote_signal("TERM")

    def kill(self) -> None:
        self._remote_signal("KILL")
        super().kill()  # and the local ssh client


class SshLauncher(RemoteLauncher):
    launcher_name = "ssh"

    def ssh_cmd(self, host: HostSpec) -> list[str]:
        """``ssh`` with the cluster's options for ``host``, up to (not including) the command."""
        s = self.cluster.ssh
        cmd = [
            "ssh", "-T",
            "-o", "BatchMode=yes",
            "-o", f"StrictHostKeyChecking={s.strict_host_key_checking}",
            "-o", f"ConnectTimeout={s.connect_timeout_s}",
            "-o", "ServerAliveInterval=5",
            "-o", "ServerAliveCountMax=3",
            "-p", str(host.port or s.port),
        ]  # fmt: skip
        if s.known_hosts_file:
            cmd += ["-o", f"UserKnownHostsFile={s.known_hosts_file}"]
        if s.identity_file:
            cmd += ["-o", "IdentitiesOnly=yes", "-i", s.identity_file]
        for o in s.options:
            cmd += ["-o", o]
        user = host.user or s.user
        if user:
            cmd += ["-l", user]
        return [*cmd, host.name, "--"]

    def run_agent(
        self, host: HostSpec, args: list[str], stdin: bytes | None = None,
        timeout: float = AGENT_TIMEOUT_S,
    ) -> tuple[int, bytes, bytes]:  # fmt: skip
        remote = shlex.join([self.python_of(host), "-m", "skewlab.deploy.agent", *args])
        return run_capture([*self.ssh_cmd(host), remote], stdin, timeout)

    def copy_mode(self, host: HostSpec) -> bool:
        return (host.workdir or self.cluster.workdir) is not None

    def remote_root(self, host: HostSpec) -> str:
        assert self.results is not None
        base = host.workdir or self.cluster.workdir
        if base is None:
            return str(self.results.root.resolve())
        return f"{base.rstrip('/')}/{self.results.root.name}"

    def start_node(self, role: str, name: str, argv: list[str], log: Path) -> NodeProc:
        host = self.host_of(name)
        remote = "exec " + shlex.join([self.python_of(host), "-u", "-m", "skewlab.node", *argv])
        with open(log, "wb") as logf:
            p = subprocess.Popen(
                [*self.ssh_cmd(host), remote], stdin=subprocess.PIPE, stdout=logf,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        return SshNode(self, host, name, role, p, log)

    def _each_copy_host(self, fn) -> list:
        hosts = [h for h in self.used_hosts() if self.copy_mode(h)]
        if not hosts:
            return []
        with ThreadPoolExecutor(max_workers=min(16, len(hosts))) as pool:
            return list(pool.map(fn, hosts))

    def stage(self) -> None:
        """Copy mode: put spec.json into a fresh folder on each host."""
        assert self.results is not None
        data = self.results.spec_path.read_bytes()

        def one(h: HostSpec) -> str | None:
            rc, _out, err = self.run_agent(h, ["stage", "--dir", self.remote_root(h)], stdin=data)
            if rc != 0:
                return f"{h.name}: cannot stage {self.remote_root(h)}: {_last(err, rc)}"
            return None

        problems = [p for p in self._each_copy_host(one) if p]
        if problems:
            raise LaunchError("; ".join(problems))

    def collect(self) -> None:
        """Copy mode: bring each host's node traces back (also after a failure)."""
        assert self.results is not None
        root = self.results.root

        def one(h: HostSpec) -> str | None:
            nodes = [n for n in self.procs if self.host_of(n).name == h.name]
            if not nodes:
                return None
            args = ["pack", "--dir", self.remote_root(h)]
            for n in nodes:
                args += ["--node", n]
            rc, out, err = self.run_agent(h, args, timeout=COLLECT_TIMEOUT_S)
            if rc != 0:
                return f"{h.name}: copying traces back failed: {_last(err, rc)}"
            with tarfile.open(fileobj=io.BytesIO(out), mode="r:") as tar:
                tar.extractall(root, filter="data")
            if not self.cluster.keep_remote:
                self.run_agent(h, ["remove", "--dir", self.remote_root(h)])
            return None

        problems = [p for p in self._each_copy_host(one) if p]
        if problems:
            raise LaunchError("; ".join(problems))


def _last(err: bytes, rc: int) -> str:
    lines = err.decode(errors="replace").strip().splitlines()
    return lines[-1] if lines else f"exit code {rc}"
