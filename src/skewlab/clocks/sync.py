"""The sync state a node's clock sources stand on: the NTP samples measured so far.

The NTP poller (node runtime or virtual-time harness) pushes samples here; sources subscribe
to do their (possibly expensive) bookkeeping at sample time so that ``read`` stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from skewlab.ntp.client import NtpSample


@dataclass(slots=True)
class SyncState:
    """Latest NTP sample, the sample history, and listeners called on every new sample."""

    latest: NtpSample | None = None
    history: list[NtpSample] = field(default_factory=list)
    max_history: int = 4096
    listeners: list[Callable[[NtpSample], None]] = field(default_factory=list)
    failures: int = 0

    def add(self, sample: NtpSample) -> None:
        self.latest = sample
        self.history.append(sample)
        if len(self.history) > self.max_history:
            del self.history[: len(self.history) - self.max_history]
        for fn in self.listeners:
            fn(sample)

    def note_failure(self) -> None:
        self.failures += 1

    def subscribe(self, fn: Callable[[NtpSample], None]) -> None:
        self.listeners.append(fn)
