"""The one interface through which skewlab code reads time.

True time is the host's CLOCK_REALTIME, shared by every emulated node on one machine. A node
reads it only through its own oscillator (``skewlab.clocks.oscillator``); real, emulated and
virtual (simulated) time all implement :class:`TimeSource`.
"""

from __future__ import annotations

import time
from typing import Protocol


class TimeSource(Protocol):
    """Anything that tells the time in integer nanoseconds."""

    def now_ns(self) -> int: ...


class HostClock:
    """True time: the host's realtime clock (``truth_ns``)."""

    __slots__ = ()

    def now_ns(self) -> int:
        return time.time_ns()


class VirtualClock:
    """Simulated true time that only moves when told to (virtual-time harness, tests)."""

    __slots__ = ("_now",)

    def __init__(self, start_ns: int = 0) -> None:
        self._now = int(start_ns)

    def now_ns(self) -> int:
        return self._now

    def advance(self, delta_ns: int) -> int:
        if delta_ns < 0:
            raise ValueError("virtual time cannot go backwards")
        self._now += int(delta_ns)
        return self._now

    def set(self, t_ns: int) -> None:
        if t_ns < self._now:
            raise ValueError("virtual time cannot go backwards")
        self._now = int(t_ns)


HOST_CLOCK = HostClock()
