"""NTP server faults during a run: outages and falsetickers, applied on schedule and recorded.

Runs as a thread inside the NTP server process. An outage with ``how = "stop"`` closes the
server's socket (clients get ICMP port unreachable) and binds a fresh server on the same port
when it ends; ``how = "drop"`` keeps the socket and drops every request. A falseticker serves
true time + ``offset_ms``. Each transition is recorded at the true instant it was applied.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from skewlab.nemesis.record import FaultRecorder
from skewlab.nemesis.schedule import NS_PER_MS, NTP_KINDS, FaultSpec
from skewlab.ntp.server import NtpServer


class NtpNemesis:
    """Applies the NTP faults of a spec to a list of running servers (index = ``server``)."""

    def __init__(
        self,
        faults: list[FaultSpec],
        servers: list[NtpServer],
        t0_ns: int,
        recorder: FaultRecorder | None,
        rebind: Callable[[int], NtpServer],
    ) -> None:
        self.servers = servers  # replaced in place when a stopped server is rebound
        self.recorder = recorder
        self.rebind = rebind  # index → a new, started server on that index's port
        self.errors: list[str] = []
        plan: list[tuple[int, int, int, str, FaultSpec]] = []  # (due, order, index, phase, f)
        for i, f in enumerate(faults):
            if f.kind not in NTP_KINDS:
                continue
            plan.append((f.start_ns(t0_ns), 2 * i + 1, i, "start", f))
            end = f.end_ns(t0_ns)
            if end is not None:
                plan.append((end, 2 * i, i, "end", f))  # an end sorts before a start at a tie
        self.plan = sorted(plan, key=lambda p: (p[0], p[1]))
        self.applied = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ntp-nemesis", daemon=True)

    def start(self) -> NtpNemesis:
        if self.plan:
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        for due, _, index, phase, f in self.plan:
            wait = (due - time.time_ns()) / 1e9
            if wait > 0 and self._stop.wait(wait):
                return
            try:
                self.apply(f, phase)
            except OSError as e:  # e.g. the port was taken while the server was down
                self.errors.append(f"faults[{index}] {phase}: {e}")
                continue
            self.applied += 1
            if self.recorder is not None:
                self.recorder.record(index, f.kind, f.target(), phase, time.time_ns(), f.detail())

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
