"""Background NTP polling for a node: bursts at the poll interval into the node's SyncState.

With one server every valid burst result is used. With several, every poll queries each server
(a burst each) and runs server selection (``skewlab.ntp.select``): falsetickers and servers
without a sample are rejected with a reason (counted per server), and the surviving sample
with the smallest root distance λ — a real exchange, never a synthesized one — is used. No
majority: no sample at all (a failure), so a lying server cannot win a tie.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Protocol

from skewlab.clocks.sync import SyncState
from skewlab.ntp.client import NtpError, burst
from skewlab.ntp.sample import NtpSample
from skewlab.ntp.select import select
from skewlab.timebase import HOST_CLOCK, Scheduler
from skewlab.trace import PartWriter, ntp_row


class NtpTransport(Protocol):
    """One server as the poller sees it: a real ``NtpClient`` (sockets, real time) or the
    simulator's modelled path (virtual time). ``exchange`` returns a sample or raises
    NtpError."""

    name: str
    timeout_s: float

    def exchange(self) -> NtpSample: ...

    def close(self) -> None: ...


class NtpPoller:
    """Polls one server (or several, with selection) every ``poll_s`` (a burst of ``burst``,
    minimum delay kept)."""

    def __init__(
        self,
        client: NtpTransport | list[NtpTransport],
        state: SyncState,
        poll_s: float,
        burst: int,
        writer: PartWriter | None = None,
        clock: Scheduler = HOST_CLOCK,
    ) -> None:
        self.clock = clock  # the loop waits through it (real time, or virtual in tests)
        self.clients = client if isinstance(client, list) else [client]
        if not self.clients:
            raise ValueError("NtpPoller needs at least one client")
        self.client = self.clients[0]
        self.state = state
        self.poll_s = poll_s
        self.burst = burst
        self.writer = writer
        self.stop_event = threading.Event()
        self.samples = 0
        # per server name: Counter of verdicts ("selected", "falseticker:<reason>",
        # "rejected:<reason>"); filled only with several servers
        self.verdicts: dict[str, Counter[str]] = {c.name: Counter() for c in self.clients}
        self._thread = threading.Thread(target=self._run, name="ntp-poller", daemon=True)

    def start(self) -> NtpPoller:
        self._thread.start()
        return self

    def _burst(self, client: NtpTransport) -> NtpSample | NtpError:
        try:
            return burst(client.exchange, self.burst)
        except NtpError as e:
            return e

    def collect(self) -> NtpSample | None:
        """One poll's exchanges: a burst per server, then (several servers) selection with its
        verdicts counted. The sample to use, or None. Changes no sync state."""
        if len(self.clients) == 1:
            out = self._burst(self.client)
            return None if isinstance(out, NtpError) else out
        sel = select([(c.name, self._burst(c)) for c in self.clients])
        for v in sel.verdicts:
            tag = "selected" if v.status == "selected" else f"{v.status}:{v.reason}"
            self.verdicts[v.server][tag] += 1
        return sel.best

    def apply(self, s: NtpSample | None) -> None:
        """Make a poll's outcome visible: the sample into the node's sync state (sources and
        servo see it now) and the trace, or a counted failure."""
        if s is None:
            self.state.note_failure()
            return
        clock = self.state.clock
        if clock is not None and s.truth_t4_ns is not None:
            # the gaps at T4 itself: read later, a step in between would misplace the sample
            # on the monotonic timescale by the step's size
            gap, step_gap = clock.oscillator.gaps_at(s.truth_t4_ns)
            self.state.add(s, gap, step_gap)
        else:
            self.state.add(s)
        self.samples += 1
        if self.writer is not None:
            self.writer.append(ntp_row(s))

    def poll_once(self) -> NtpSample | None:
        """One poll: exchanges, then the outcome applied (real time: one after the other)."""
        s = self.collect()
        self.apply(s)
        return s

    def counts(self) -> dict[str, object]:
        """What the poller did: samples used, failed polls, and (several servers) verdicts."""
        out: dict[str, object] = {"ntp_samples": self.samples,
                                  "ntp_failed_polls": self.state.failures}  # fmt: skip
        if len(self.clients) > 1:
            out["ntp_selection"] = {k: dict(v) for k, v in self.verdicts.items()}
        addresses = {c.name: c.address for c in self.clients if hasattr(c, "address")}
        if addresses:  # real servers: where each named one was
            out["ntp_servers"] = addresses
        return out

    def _run(self) -> None:
        poll_ns = round(self.poll_s * 1e9)
        while not self.stop_event.is_set():
            self.poll_once()
            if not self.clock.wait_until(self.clock.now_ns() + poll_ns, self.stop_event):
                return

    def stop(self) -> None:
        self.stop_event.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.client.timeout_s * self.burst * len(self.clients) + 2)
        if self.writer is not None:
            self.writer.flush()
        for c in self.clients:
            c.close()
