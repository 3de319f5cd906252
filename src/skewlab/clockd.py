"""Publishing a skewlab clock source's bounds as a ClockBound v2 segment (``skewlab clockd``).

Any ClockBound client on the host (C, Rust, Go, Python) can then read skewlab's bounds from
the segment. The published bound is centred on the host's CLOCK_REALTIME, as the protocol
requires: bound = max(t − earliest, latest − t) at as_of, and the drift rate is never below
the growth the source itself predicts over the next second.
"""

from __future__ import annotations

import math
import threading

from skewlab.clocks.base import ClockSource, Reading, Status
from skewlab.clocks.external.clockbound_shm import (
    CB_FREE_RUNNING,
    CB_SYNCHRONIZED,
    CB_UNKNOWN,
    NS,
    ClockBoundWriter,
)
from skewlab.timebase import host_ns, monotonic_coarse_ns, monotonic_s

STATUS_CODES = {
    Status.SYNCHRONIZED: CB_SYNCHRONIZED,
    Status.FREE_RUNNING: CB_FREE_RUNNING,
    Status.UNSYNCHRONIZED: CB_UNKNOWN,
}


def realtime_half_width(r: Reading, t_ns: int) -> int:
    """Half-width of the smallest interval centred on ``t_ns`` that contains [earliest, latest]."""
    assert r.earliest_ns is not None and r.latest_ns is not None
    return max(0, t_ns - r.earliest_ns, r.latest_ns - t_ns)


def segment_values(
    source: ClockSource, real_ns: int, min_drift_ppb: int
) -> tuple[int, int, int, Reading]:
    """(bound_ns, max_drift_ppb, clock_status, reading) to publish for a read at ``real_ns``.

    The drift is the growth of the realtime-centred half-width over the next second as the
    source predicts it, and at least ``min_drift_ppb``.
    """
    r = source.read(real_ns)
    if r.status is Status.UNSYNCHRONIZED or r.earliest_ns is None:
        return 0, min_drift_ppb, CB_UNKNOWN, r
    bound = realtime_half_width(r, real_ns)
    ahead = source.read(real_ns + NS)
    drift = min_drift_ppb
    if ahead.earliest_ns is not None:
        drift = max(drift, realtime_half_width(ahead, real_ns + NS) - bound)
    return bound, min(drift, NS - 1), STATUS_CODES[r.status], r


class ClockDaemon:
    """The publish loop: read the source, write one segment update, sleep ``interval_s``."""

    def __init__(self, source: ClockSource, writer: ClockBoundWriter, interval_s: float,
                 void_after_s: float, min_drift_ppb: int) -> None:  # fmt: skip
        self.source = source
        self.writer = writer
        self.interval_s = interval_s
        self.void_after_ns = round(void_after_s * 1e9)
        self.min_drift_ppb = min_drift_ppb
        self.stop_event = threading.Event()
        self.updates = 0
        self.last: tuple[int, int, int] | None = None

    def publish_once(self) -> tuple[int, int, int]:
        as_of = monotonic_coarse_ns()  # before the realtime read: errs towards more growth
        real = host_ns()
        bound, drift, status, _ = segment_values(self.source, real, self.min_drift_ppb)
        self.writer.publish(bound, as_of, as_of + self.void_after_ns, drift, status)
        self.updates += 1
        self.last = (bound, drift, status)
        return self.last

    def run(self, duration_s: float = 0.0) -> None:
        end = monotonic_s() + duration_s if duration_s > 0 else math.inf
        while not self.stop_event.is_set() and monotonic_s() < end:
            self.publish_once()
            self.stop_event.wait(min(self.interval_s, max(0.0, end - monotonic_s())))
