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

from skewlab.clocks.sync import SyncState
from skewlab.ntp.client import NtpClient, NtpError
from skewlab.ntp.sample import NtpSample
from skewlab.ntp.select import select
from skewlab.trace import PartWriter, ntp_row


class NtpPoller:
    """Polls one server (or several, with selection) every ``poll_s`` (a burst of ``burst``,
    minimum delay kept)."""

    def __init__(
        self,
        client: NtpClient | list[NtpClient],
        state: SyncState,
        poll_s: float,
        burst: int,
        writer: PartWriter | None = None,
    ) -> None:
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

    def _burst(self, client: NtpClient) -> NtpSample | NtpError:
        try:
            return client.best_of(self.burst)
        except NtpError as e:
            return e

    def poll_once(self) -> NtpSample | None:
        if len(self.clients) == 1:
            out = self._burst(self.client)
            s = None if isinstance(out, NtpError) else out
        else:
            sel = select([(c.name, self._burst(c)) for c in self.clients])
            for v in sel.verdicts:
                tag = "selected" if v.status == "selected" else f"{v.status}:{v.reason}"
                self.verdicts[v.server][tag] += 1
            s = sel.best
        if s is None:
            self.state.note_failure()
            return None
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
        return s

    def counts(self) -> dict[str, object]:
        """What the poller did: samples used, failed polls, and (several servers) verdicts."""
        out: dict[str, object] = {"ntp_samples": self.samples,
                                  "ntp_failed_polls": self.state.failures}  # fmt: skip
        if len(self.clients) > 1:
            out["ntp_selection"] = {k: dict(v) for k, v in self.verdicts.items()}
        return out

    def _run(self) -> None:
        while not self.stop_event.is_set():
            self.poll_once()
            self.stop_event.wait(self.poll_s)

    def stop(self) -> None:
        self.stop_event.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.client.timeout_s * self.burst * len(self.clients) + 2)
        if self.writer is not None:
            self.writer.flush()
        for c in self.clients:
            c.close()
