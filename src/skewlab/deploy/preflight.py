"""Pre-flight checks of a deployment, run on every host before anything is started.

Per host: reachable (the agent ran), skewlab importable at the launcher's version, the bind
address usable and the fixed ports free, the configured clock sources available (hosts with a
coordinator or worker), the launcher's control address reachable from the host, and the host's
clock within ``max_clock_offset_ms`` of the launcher's. The clock check brackets the host's
reading T with the launcher's readings a (before the probe) and b (after): the offset host −
launcher lies in [T − b, T − a]; the check fails only if that whole interval is beyond the limit.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from skewlab import __version__
from skewlab.deploy.cluster import NTP_NODE, ClusterSpec, HostSpec
from skewlab.spec import ExperimentSpec
from skewlab.timebase import host_ns

# run_agent(host, agent_args) → (exit code, stdout, stderr); agent_args follow
# ``python -m skewlab.deploy.agent``
AgentRunner = Callable[[HostSpec, list[str]], tuple[int, bytes, bytes]]


@dataclass
class HostCheck:
    """The pre-flight result of one host."""

    host: str
    problems: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)  # the agent's probe, plus the offset
    offset_bound_ms: tuple[float, float] | None = None  # host − launcher clock, [low, high]

    @property
    def ok(self) -> bool:
        return not self.problems


def clock_offset_bound_ns(host_ns: int, before_ns: int, after_ns: int) -> tuple[int, int]:
    """Bounds of host − launcher from a host reading taken between two launcher readings."""
    return host_ns - after_ns, host_ns - before_ns


def clock_problem(bound_ns: tuple[int, int], limit_ms: float) -> str | None:
    """A message if every offset within the bound is beyond ±limit, else None."""
    lo, hi = bound_ns
    limit = round(limit_ms * 1_000_000)
    if lo > limit or hi < -limit:
        near = lo if lo > limit else hi
        return (
            f"clock is {near / 1e6:+.1f} ms or more off this machine's (limit "
            f"±{limit_ms:g} ms; is it synchronized?)"
        )
    return None


def _host_args(
    host: HostSpec, cluster: ClusterSpec, spec: ExperimentSpec, bind: str, control: str | None,
    results: str | None,
) -> list[str]:  # fmt: skip
    nodes = set(host.nodes)
    default_ntp = cluster.ntp == "embedded" and not any(NTP_NODE in h.nodes for h in cluster.hosts)
    if default_ntp and spec.coordinator.name in nodes:
        nodes.add(NTP_NODE)  # the NTP server goes with the coordinator by default
    args = ["probe", "--bind", bind]
    ports = [spec.node(n).port for n in nodes if n != NTP_NODE and spec.node(n).port]
    if NTP_NODE in nodes and spec.ntp.port:
        ports.append(spec.ntp.port)
    for p in sorted(set(ports)):
        args += ["--udp-port", str(p)]
    if nodes - {NTP_NODE}:
        params = {s: spec.source_params.get(s, {}) for s in spec.sources}
        args += ["--sources", json.dumps(params)]
    if results:
        args += ["--results", results]
    if control:
        args += ["--connect", control]
    return args


def check_hosts(
    cluster: ClusterSpec,
    spec: ExperimentSpec,
    run_agent: AgentRunner,
    bind_of: Callable[[HostSpec], str],
    control_host: str | None = None,
    results_of: Callable[[HostSpec], str | None] = lambda h: None,
) -> list[HostCheck]:
    """Probe every host concurrently; one :class:`HostCheck` per host, in cluster order."""
    probe_sock = None
    control = None
    if control_host is not None:
        try:  # a throwaway listener on the control address: can the hosts connect back?
            fam = socket.AF_INET6 if ":" in control_host else socket.AF_INET
            probe_sock = socket.create_server((control_host, cluster.control_port), family=fam)
            h, p = probe_sock.getsockname()[:2]
            control = f"[{h}]:{p}" if ":" in h else f"{h}:{p}"
        except OSError as e:
            bad = HostCheck("(this machine)")
            bad.problems.append(
                f"cannot listen on control address {control_host}:{cluster.control_port}: "
                f"{e.strerror} (set control_address / control_port in the cluster file)"
            )
            return [bad]

    def one(host: HostSpec) -> HostCheck:
        chk = HostCheck(host.name)
        args = _host_args(host, cluster, spec, bind_of(host), control, results_of(host))
        before = host_ns()
        try:
            rc, out, err = run_agent(host, args)
        except Exception as e:  # a launcher tool missing etc.: a problem of this host, said
            chk.problems.append(f"could not run the probe: {type(e).__name__}: {e}")
            return chk
        after = host_ns()
        if rc != 0:
            last = (err or out).decode(errors="replace").strip().splitlines()
            why = last[-1] if last else f"exit code {rc}"
            chk.problems.append(f"unreachable, or skewlab not importable there: {why}")
            return chk
        try:
            facts = json.loads(out.decode().strip().splitlines()[-1])
        except (ValueError, IndexError):
            chk.problems.append("the probe printed no result (is skewlab installed there?)")
            return chk
        chk.facts = facts
        _judge(chk, facts, cluster, before, after)
        return chk

    try:
        with ThreadPoolExecutor(max_workers=min(16, max(1, len(cluster.hosts)))) as pool:
            return list(pool.map(one, cluster.hosts))
    finally:
        if probe_sock is not None:
            probe_sock.close()


def _judge(chk: HostCheck, facts: dict[str, Any], cluster: ClusterSpec, a: int, b: int) -> None:
    if facts.get("version") != __version__:
        chk.problems.append(
            f"skewlab {facts.get('version')} there, {__version__} here (install the same version)"
        )
    for addr, r in (facts.get("bind") or {}).items():
        if not r["ok"]:
            chk.problems.append(f"cannot bind address {addr}: {r['reason']} (check address/bind)")
    for port, r in (facts.get("udp_ports") or {}).items():
        if not r["ok"]:
            chk.problems.append(f"UDP port {port} is not free: {r['reason']}")
    for name, r in (facts.get("sources") or {}).items():
        if not r["ok"] and not r["optional"]:
            chk.problems.append(
                f"clock source {name!r} unavailable: {r['reason']} "
                f"(or set source_params.{name}.optional = true)"
            )
    if facts.get("results_visible") is False:
        chk.problems.append("the results folder is not visible there (no shared file system?)")
    conn = facts.get("connect")
    if conn is not None and not conn.get("ok"):
        chk.problems.append(
            f"cannot connect back to the control address {conn.get('address')}: "
            f"{conn.get('reason')} (set control_address to an address of this machine it reaches)"
        )
    t = facts.get("time_ns")
    if isinstance(t, int):
        lo, hi = clock_offset_bound_ns(t, a, b)
        chk.offset_bound_ms = (round(lo / 1e6, 3), round(hi / 1e6, 3))
        msg = clock_problem((lo, hi), cluster.max_clock_offset_ms)
        if msg:
            chk.problems.append(msg)


def format_report(checks: list[HostCheck]) -> str:
    """One line per host (ok, or each problem), for the terminal."""
    lines = []
    for c in checks:
        if c.ok:
            f = c.facts
            off = c.offset_bound_ms
            clock = f", clock offset in [{off[0]:+.1f}, {off[1]:+.1f}] ms" if off else ""
            lines.append(
                f"ok    {c.host}: skewlab {f.get('version')}, {f.get('hostname')}, "
                f"kernel {f.get('kernel')}{clock}"
            )
        else:
            for p in c.problems:
                lines.append(f"FAIL  {c.host}: {p}")
    return "\n".join(lines)


def host_metadata(checks: list[HostCheck]) -> dict[str, Any]:
    """The per-host facts for metadata.json (host, kernel, clock source status, offset)."""
    out: dict[str, Any] = {}
    for c in checks:
        f = c.facts
        out[c.host] = {
            "hostname": f.get("hostname"),
            "kernel": f.get("kernel"),
            "platform": f.get("platform"),
            "python": f.get("python"),
            "skewlab_version": f.get("version"),
            "boot_id": f.get("boot_id"),
            "clock_sources": f.get("sources"),
            "clock_offset_bound_ms": list(c.offset_bound_ms) if c.offset_bound_ms else None,
        }
    return out
