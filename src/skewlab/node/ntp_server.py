"""The NTP-server node process: the spec's embedded NTP servers, with its NTP faults applied."""

from __future__ import annotations

from collections import Counter
from typing import Any

from skewlab.nemesis.ntp import NtpNemesis
from skewlab.nemesis.record import FaultRecorder
from skewlab.nemesis.schedule import NTP_KINDS
from skewlab.node.context import NodeContext, NodeFailure
from skewlab.ntp.server import NtpServer


def run_ntp_server(ctx: NodeContext) -> int:
    """Serve ``ntp.servers`` NTP servers (server k on ``ntp.port + k`` if a port is set) and
    apply the spec's NTP faults to them (skewlab.nemesis.ntp)."""
    spec = ctx.spec
    servers: list[NtpServer] = []
    count = 0 if ctx.truth_reference == "only" else spec.ntp.servers
    for k in range(count):
        port = spec.ntp.port + k if spec.ntp.port else 0
        try:
            servers.append(NtpServer(spec.run.host, port, seed=spec.seed * 100 + k).start())
        except OSError as e:
            for s in servers:
                s.stop()
            raise NodeFailure(
                f"cannot bind the NTP server to {spec.run.host}:{port}: {e.strerror}"
                " (choose another ntp.port, or 0 for any free port)"
            ) from None
    ports = [s.port for s in servers]
    # measured truth's reference: one more server, fault-free (no nemesis reaches it)
    reference = NtpServer(spec.run.host, 0).start() if ctx.truth_reference else None
    retired: list[NtpServer] = []

    def rebind(k: int) -> NtpServer:
        retired.append(servers[k])
        return NtpServer(spec.run.host, ports[k], seed=spec.seed * 100 + k).start()

    has_faults = count > 0 and any(f.kind in NTP_KINDS for f in spec.faults)
    recorder = FaultRecorder(ctx.results.nemesis_dir, ctx.name) if has_faults else None
    faults = spec.faults if count else []  # serving only the reference: no NTP faults
    nemesis = NtpNemesis(faults, servers, ctx.t0_ns, recorder, rebind).start()
    ctx.link.send("ready", port=ports[0] if ports else None, ports=ports,
                  truth_port=reference.port if reference else None)  # fmt: skip
    ctx.link.stop_event.wait()
    nemesis.stop()
    counts: Counter[str] = Counter()
    per_server = []
    for s in servers:
        s.stop()  # idempotent: a server stopped by an outage is simply closed again
    for k, s in enumerate(servers):
        c = Counter(s.counters)
        for old in retired:
            if old.port == ports[k]:
                c.update(old.counters)
        per_server.append(dict(c))
        counts.update(c)
    out: dict[str, Any] = dict(counts)
    if len(servers) > 1:
        out["servers"] = per_server
    out.update(nemesis.counts())
    if reference is not None:
        reference.stop()
        out["truth_reference"] = dict(reference.counters)
    ctx.link.send("done", counts=out)
    return 0
