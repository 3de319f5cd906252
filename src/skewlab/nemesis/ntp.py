"""NTP server faults during a run: outages and falsetickers, applied on schedule and recorded.

Runs as a thread inside the NTP server process. An outage with ``how = "stop"`` closes the
server's socket (clients get ICMP port unreachable) and binds a fresh server on the same port
when it ends; ``how = "drop"`` keeps the socket and drops every request. A falseticker serves
true time + ``offset_ms``. Each transition is recorded at the true instant it was applied.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from skewlab.nemesis.record import FaultRecorder
from skewlab.nemesis.schedule import NS_PER_MS, NTP_KINDS, FaultSpec
from skewlab.nemesis.timed import TimedNemesis
from skewlab.ntp.server import NtpServer
from skewlab.timebase import HOST_CLOCK, Scheduler


class NtpNemesis(TimedNemesis):
    """Applies the NTP faults of a spec to a list of running servers (index = ``server``)."""

    thread_name = "ntp-nemesis"

    def __init__(
        self,
        faults: list[FaultSpec],
        servers: list[NtpServer],
        t0_ns: int,
        recorder: FaultRecorder | None,
        rebind: Callable[[int], NtpServer],
        clock: Scheduler = HOST_CLOCK,
    ) -> None:
        self.servers = servers  # replaced in place when a stopped server is rebound
        self.rebind = rebind  # index → a new, started server on that index's port
        super().__init__(faults, t0_ns, NTP_KINDS, recorder, clock)

    def transition(self, f: FaultSpec, phase: str) -> str | None:
        try:
            self.apply(f, phase)
        except OSError as e:  # e.g. the port was taken while the server was down
            return str(e)
        return None

    def apply(self, f: FaultSpec, phase: str) -> None:
        """Make one transition on the target server now."""
        k = f.server
        s = self.servers[k]
        start = phase == "start"
        if f.kind == "ntp_falseticker":
            s.offset_ns = round(f.offset_ms * NS_PER_MS) if start else 0  # type: ignore[operator]
        elif f.how == "drop":
            s.drop_fraction = 1.0 if start else 0.0
        elif start:
            s.stop()
        else:
            self.servers[k] = self.rebind(k)

    def counts(self) -> dict[str, Any]:
        return {"nemesis_applied": self.applied, "nemesis_errors": self.errors}
