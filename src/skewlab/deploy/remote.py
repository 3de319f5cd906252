"""What the SSH and Slurm launchers share: placement of nodes on hosts, pre-flight, real or
emulated clocks, and the metadata about hosts. Subclasses say how to run a command on a host.
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path
from typing import Any

from skewlab.deploy.cluster import NTP_NODE, ClusterSpec, HostSpec
from skewlab.deploy.orchestrator import LaunchError, Orchestrator, ProgressFn
from skewlab.deploy.preflight import HostCheck, check_hosts, format_report, host_metadata
from skewlab.spec import ExperimentSpec, SpecError

AGENT_TIMEOUT_S = 60.0  # one agent command on a host (probe, stage, signal, pack)


class RemoteLauncher(Orchestrator):
    """Nodes on the hosts of a cluster file; the control server listens on control_address."""

    measured_truth_default = True  # real hosts have no exact truth: measure it (truth.measured)

    def __init__(
        self,
        spec: ExperimentSpec,
        out_dir: Path,
        cluster: ClusterSpec,
        progress: ProgressFn | None = None,
        results_dir: Path | None = None,
    ) -> None:
        super().__init__(spec, out_dir, progress, results_dir)
        self.cluster = cluster
        self.checks: list[HostCheck] = []
        self._addr: dict[str, str] = {}  # host name → resolved address

    # -- what subclasses provide -----------------------------------------------------------------
    def run_agent(
        self, host: HostSpec, args: list[str], stdin: bytes | None = None,
        timeout: float = AGENT_TIMEOUT_S,
    ) -> tuple[int, bytes, bytes]:  # fmt: skip
        """Run ``python -m skewlab.deploy.agent ARGS`` on ``host``: (exit code, stdout, stderr)."""
        raise NotImplementedError

    def host_name(self, host: HostSpec) -> str:
        """The real name of a host (Slurm resolves "@N")."""
        return host.name

    def remote_root(self, host: HostSpec) -> str:
        """The results folder as the nodes on ``host`` see it (default: shared file system)."""
        assert self.results is not None
        return str(self.results.root)

    # -- placement --------------------------------------------------------------------------------
    def host_of(self, node: str) -> HostSpec:
        return self.cluster.host_of(node, self.spec)

    def python_of(self, host: HostSpec) -> str:
        return host.python or self.cluster.python

    def address_of(self, host: HostSpec) -> str:
        """Where this host's nodes are reached: ``address``, else the host name resolved here."""
        if host.address:
            return host.address
        if host.name not in self._addr:
            name = self.host_name(host)
            try:
                self._addr[host.name] = socket.getaddrinfo(name, None, type=socket.SOCK_DGRAM)[0][
                    4
                ][0]
            except OSError as e:
                raise LaunchError(
                    f"host {name}: cannot resolve its address ({e}); set its address"
                ) from None
        return self._addr[host.name]

    def bind_of(self, host: HostSpec) -> str:
        return host.bind or self.address_of(host)

    def node_address(self, name: str) -> str:
        return self.address_of(self.host_of(name))

    def node_argv(self, role: str, name: str, extra: list[str]) -> list[str]:
        root = self.remote_root(self.host_of(name))
        argv = super().node_argv(role, name, extra)
        argv[argv.index("--spec") + 1] = f"{root}/spec.json"
        argv[argv.index("--results") + 1] = root
        bind = self.bind_of(self.host_of(name))
        if "--bind" in argv:
            argv[argv.index("--bind") + 1] = bind
        else:
            argv += ["--bind", bind]
        return argv

    def ntp_address(self) -> str | None:
        return None if self.cluster.ntp == "embedded" else self.cluster.ntp

    def used_hosts(self) -> list[HostSpec]:
        """Hosts with at least one node (the NTP server's host counts)."""
        names = [n.name for n in self.spec.nodes]
        if self.cluster.ntp == "embedded":
            names.append(NTP_NODE)
        seen: dict[str, HostSpec] = {}
        for n in names:
            h = self.host_of(n)
            seen.setdefault(h.name, h)
        return list(seen.values())

    # -- control ----------------------------------------------------------------------------------
    def control_host(self) -> str:
        c = self.cluster
        if c.control_address:
            return c.control_address
        if c.all_loopback():
            return "127.0.0.1"
        raise LaunchError(
            "the cluster file needs control_address: an address of this machine that every "
            "host can connect to (the nodes report back over it)"
        )

    def control_listen(self) -> tuple[str, int]:
        return self.control_host(), self.cluster.control_port

    # -- pre-flight -------------------------------------------------------------------------------
    def preflight(self) -> None:
        try:
            self.cluster.check_against(self.spec)
        except SpecError as e:
            raise LaunchError(str(e).replace("\n", "; ")) from None
        from skewlab.net.profiles import experiment_paths

        sp = self.spec
        paths = experiment_paths(sp.coordinator.name, [w.name for w in sp.workers],
                                 [n.name for n in sp.nodes])  # fmt: skip
        if sp.network.relayed(paths):
            raise LaunchError(
                f"network profile {sp.network.profile!r} emulates links with relays on this "
                "machine, which only the local launcher supports; use network = 'loopback' "
                "with real hosts (their network is the real one)"
            )
        if sp.run.netns:
            raise LaunchError(
                "run.netns (namespace mode) puts every node in a network namespace on this "
                "machine, which only the local launcher supports; remove it for real hosts"
            )
        self.out_dir.mkdir(parents=True, exist_ok=True)
        shared = self.results_dir or self.out_dir

        def results_of(h: HostSpec) -> str | None:
            return None if self.copy_mode(h) else str(shared.resolve())

        used = self.used_hosts()
        sub = self.cluster.model_copy(update={"hosts": used})
        self.checks = check_hosts(
            sub, self.spec, lambda h, a: self.run_agent(h, a), self.bind_of,
            self.control_host(), results_of,
        )  # fmt: skip
        report = format_report(self.checks)
        for line in report.splitlines():
            self.progress(line)
        bad = [c for c in self.checks if not c.ok]
        if bad:
            raise LaunchError(
                "pre-flight failed: " + "; ".join(f"{c.host}: {p}" for c in bad for p in c.problems)
            )

    def copy_mode(self, host: HostSpec) -> bool:
        """True if this host's nodes write to their own folder, copied back afterwards."""
        return False

    # -- clocks and metadata ----------------------------------------------------------------------
    def _prepare_spec(self) -> None:
        """Real clocks: every node's oscillator is the identity (offset 0, drift 0, no wander,
        thermal sinusoid or replay, no emulated servo), so a node reads its host's clock — as
        disciplined as the host's own daemon keeps it; the configured clock models do not
        apply."""
        if self.cluster.clocks != "real":
            return
        changed = [
            n.name
            for n in self.spec.nodes
            if n.offset_ms or n.drift_ppm or n.wander_ppb or n.thermal or n.replay
        ]
        identity = {
            "offset_ms": 0.0,
            "drift_ppm": 0.0,
            "wander_ppb": 0.0,
            "thermal": [],
            "replay": None,
            "discipline": "free",
        }
        nodes = [n.model_copy(update=identity) for n in self.spec.nodes]  # fmt: skip
        self.spec = self.spec.model_copy(update={"nodes": nodes})
        if changed:
            self.progress(
                f"clocks = real: the emulated clock models (offset, drift, wander, thermal, "
                f"replay) of {', '.join(changed)} are not used"
            )

    def truth_available(self) -> bool:
        """True time exists only for emulated oscillators whose nodes share one kernel clock
        (the same boot id on every host with a coordinator or worker)."""
        if self.cluster.clocks != "emulated":
            return False
        node_hosts = {self.host_of(n.name).name for n in self.spec.nodes}
        boots = {c.facts.get("boot_id") for c in self.checks if c.host in node_hosts}
        return len(boots) == 1 and None not in boots

    def describe(self) -> dict[str, Any]:
        c = self.cluster
        place = {n.name: self.host_of(n.name).name for n in self.spec.nodes}
        if c.ntp == "embedded":
            place[NTP_NODE] = self.host_of(NTP_NODE).name
        return {
            "clocks": c.clocks,
            "truth_note": None if self.truth_available() else (
                "real host clocks: no ground truth; truth_ns columns hold each host's own clock"
                if c.clocks == "real" else
                "emulated oscillators on hosts with different kernel clocks: no common truth"
            ),
            "ntp": c.ntp,
            "placement": place,
            "hosts": host_metadata(self.checks),
        }  # fmt: skip


def run_capture(cmd: list[str], stdin: bytes | None, timeout: float) -> tuple[int, bytes, bytes]:
    """Run a local command (ssh/srun) and capture its output; a timeout is exit code 124."""
    try:
        p = subprocess.run(
            cmd, input=stdin, capture_output=True, timeout=timeout,
            stdin=None if stdin is not None else subprocess.DEVNULL,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return 124, b"", f"timed out after {timeout:.0f} s: {cmd[0]}".encode()
    except FileNotFoundError:
        return 127, b"", f"{cmd[0]} is not installed on this machine".encode()
    return p.returncode, p.stdout, p.stderr
