"""Local launcher: every node is its own OS process on this host, talking over loopback.

The orchestration (order, readiness, failures, cleanup, metadata) is shared with the SSH and
Slurm launchers (deploy/orchestrator.py); here a node is a child process started with Popen in
its own session and stopped by PID.

Namespace mode (``run.netns``, root only): each node runs in its own network namespace
(``ip netns exec``, which execs the node in place, so the PID we hold is the node's) and binds
its namespace address; the launcher's run loop runs in the hub namespace, so its control server
and link relays live beside the bridge every node reaches. The namespaces are removed when the
run ends, on every exit path, after every node was stopped.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from skewlab.deploy.orchestrator import (
    NTP_NODE,
    LaunchError,
    NodeProc,
    Orchestrator,
    ProgressFn,
    RunOutcome,
    pid_alive,
)
from skewlab.deploy.zygote import NodeStarter, StarterError
from skewlab.net import netns

__all__ = ["LaunchError", "LocalLauncher", "Proc", "ProgressFn", "RunOutcome", "pid_alive"]

Proc = NodeProc  # the name older callers use


class LocalLauncher(Orchestrator):
    """Every node a child process of this one; emulated oscillators, one true clock."""

    launcher_name = "local"
    topology: netns.Topology | None = None  # namespace mode: the namespaces of this run
    starter: NodeStarter | None = None  # forks the nodes (not in namespace mode)

    def acquire(self) -> None:
        """The node starter, forked from this process while it runs one thread (outside
        namespace mode, where each node is started inside its namespace)."""
        if self.topology is not None or self.starter is not None:
            return
        try:
            self.starter = NodeStarter(self._log_path("node-starter"))
        except (StarterError, OSError) as e:
            raise LaunchError(f"cannot start the node starter: {e}") from None
        self.meta["node_starter_pid"] = self.starter.proc.pid
        self.meta["node_starter"] = "forked" if self.starter.forked else "exec"
        self._save_meta()

    def release(self) -> None:
        """After every node stopped: let the node starter go."""
        try:
            super().release()
        finally:
            if self.starter is not None:
                self.starter.close()
                self.starter = None

    def run(self) -> RunOutcome:
        if not self.spec.run.netns:
            return super().run()
        ok, why = netns.available()
        if not ok:
            raise LaunchError(f"--netns / run.netns: {why}")
        names = [NTP_NODE, *(n.name for n in self.spec.nodes)]
        try:
            with netns.Topology(names) as topo:  # removed on leaving, whatever the reason
                self.topology = topo
                with topo.in_hub():
                    return super().run()
        except netns.NetnsError as e:
            raise LaunchError(f"namespace mode: {e}") from None
        finally:
            self.topology = None

    def preflight(self) -> None:
        """The base checks (clock sources), then this host's as ``check_hosts`` makes them on
        remote ones: the bind address usable and every fixed UDP port (``ntp.port``, a node's
        ``port``) free; one ``ok`` line, or LaunchError naming each problem and its key."""
        super().preflight()
        if self.spec.run.netns:
            return  # each node binds its own address in its own namespace
        from skewlab import __version__
        from skewlab.deploy.agent import _can_bind

        host = self.spec.run.host
        ok, why = _can_bind(host, 0)
        problems = [] if ok else [f"cannot bind address {host}: {why} (run.host)"]
        fixed = [("ntp.port", self.spec.ntp.port)]
        fixed += [(f"nodes[{i}].port ({n.name})", n.port) for i, n in enumerate(self.spec.nodes)]
        for key, port in fixed:
            if port and ok:
                free, why = _can_bind(host, port)
                if not free:
                    problems.append(f"UDP port {host}:{port} ({key}) is not free: {why}")
        if problems:
            raise LaunchError("pre-flight, this host: " + "; ".join(problems))
        ports = [str(p) for _k, p in fixed if p]
        free = f", UDP port(s) {', '.join(ports)} free" if ports else ""
        self.progress(f"ok    localhost: skewlab {__version__}, sources available, "
                      f"address {host} usable{free}")  # fmt: skip

    def _prepare_spec(self) -> None:
        if self.topology is not None:  # nodes bind their own address (--bind); this is the hub's
            self.spec.run.host = self.topology.hub_address

    def node_address(self, name: str) -> str:
        if self.topology is not None:
            return self.topology.address(name)
        return super().node_address(name)

    def describe(self) -> dict[str, object]:
        if self.topology is None:
            return {}
        t = self.topology
        return {"netns": {"hub": t.hub_ns, "hub_address": t.hub_address, "nodes": dict(t.ns)}}

    def start_node(self, role: str, name: str, argv: list[str], log: Path) -> NodeProc:
        if self.topology is None:  # forked by the node starter (made by ``acquire``)
            assert self.starter is not None
            try:
                return NodeProc(name, role, self.starter.start(argv, log), log)
            except StarterError as e:
                log = self._log_path("node-starter")
                raise LaunchError(f"{role} {name}: {e}; see {log}") from None
        # namespace mode: the node must run inside its namespace (ip netns exec execs it there)
        cmd = [*netns.exec_prefix(self.topology.ns[name]), sys.executable, "-m", "skewlab.node",
               *argv]  # fmt: skip
        with open(log, "wb") as logf:
            p = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=logf, stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches only the launcher, which stops them
            )  # fmt: skip
        return NodeProc(name, role, p, log)
