"""Background NTP polling for a node: bursts at the poll interval into the node's SyncState."""

from __future__ import annotations

import threading

from skewlab.clocks.sync import SyncState
from skewlab.ntp.client import NtpClient, NtpError, NtpSample
from skewlab.trace import PartWriter


class NtpPoller:
    """Polls one server every ``poll_s`` (a burst of ``burst``, minimum delay kept)."""

    def __init__(
        self,
        client: NtpClient,
        state: SyncState,
        poll_s: float,
        burst: int,
        writer: PartWriter | None = None,
    ) -> None:
        self.client = client
        self.state = state
        self.poll_s = poll_s
        self.burst = burst
        self.writer = writer
        self.stop_event = threading.Event()
        self.samples = 0
        self._thread = threading.Thread(target=self._run, name="ntp-poller", daemon=True)

    def start(self) -> NtpPoller:
        self._thread.start()
        return self

    def poll_once(self) -> NtpSample | None:
        try:
            s = self.client.best_of(self.burst)
        except NtpError:
            self.state.note_failure()
            return None
        self.state.add(s)
        self.samples += 1
        if self.writer is not None:
            self.writer.append(
                (
                    s.server,
                    s.t1_ns,
                    s.t2_ns,
                    s.t3_ns,
                    s.t4_ns,
                    s.offset_ns,
                    s.delay_ns,
                    s.root_distance_ns,
                    s.truth_t1_ns,
                    s.truth_t4_ns,
                )
            )
        return s

    def _run(self) -> None:
        while not self.stop_event.is_set():
            self.poll_once()
            self.stop_event.wait(self.poll_s)

    def stop(self) -> None:
        self.stop_event.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.client.timeout_s * self.burst + 2)
        if self.writer is not None:
            self.writer.flush()
        self.client.close()
