"""The one interface through which skewlab code reads time and waits for it.

True time is the host's CLOCK_REALTIME, shared by every emulated node on one machine. A node
reads it only through its own oscillator (``skewlab.clocks.oscillator``); real, emulated and
virtual (simulated) time all implement :class:`TimeSource`. Node logic that waits (the NTP
poller, the commit-wait pass, the fault schedule) waits through :class:`Scheduler`
(``wait_until``), so the same loop runs on the host clock (a real wait) and on a virtual clock
(time jumps to the instant).

No other module reads a clock or sleeps directly (``tests/unit/test_time_door.py`` checks it).
Node logic takes a :class:`TimeSource`/:class:`Scheduler` (default :data:`HOST_CLOCK`) so it can
run in virtual time; wall-clock bookkeeping of the tool itself (progress, elapsed time, metadata
stamps, CPU accounting, socket deadlines) uses the module-level aliases below. They are the C
functions themselves, not wrappers: binding one to a local in a hot loop costs what binding
``time.time_ns`` did.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

# Host clocks, as the C functions (zero extra cost).
host_ns = time.time_ns  # true time: CLOCK_REALTIME, integer ns
monotonic_ns = time.monotonic_ns  # CLOCK_MONOTONIC, integer ns
monotonic_s = time.monotonic  # CLOCK_MONOTONIC, float s (deadlines, elapsed wall time)
perf_ns = time.perf_counter_ns  # highest-resolution interval timer, integer ns
cpu_s = time.process_time  # this process's CPU time (user + sys), float s
thread_cpu_s = time.thread_time  # this thread's CPU time, float s
sleep = time.sleep  # a real wait of the calling thread, float s

_COARSE = getattr(time, "CLOCK_MONOTONIC_COARSE", time.CLOCK_MONOTONIC)


def monotonic_coarse_ns() -> int:
    """CLOCK_MONOTONIC_COARSE where the OS has it (the clock of ClockBound's as_of/void_after),
    else CLOCK_MONOTONIC."""
    return time.clock_gettime_ns(_COARSE)


class TimeSource(Protocol):
    """Anything that tells the time in integer nanoseconds."""

    def now_ns(self) -> int: ...


class Scheduler(TimeSource, Protocol):
    """A clock that can also wait: ``wait_until(t_ns, stop)`` returns once true time reaches
    ``t_ns`` (True) or ``stop`` is set (False)."""

    def wait_until(self, t_ns: int, stop: threading.Event) -> bool: ...


class HostClock:
    """True time: the host's realtime clock (``truth_ns``)."""

    __slots__ = ()

    # the C function itself: ``HOST_CLOCK.now_ns`` costs what ``time.time_ns`` does
    now_ns = staticmethod(time.time_ns)

    def wait_until(self, t_ns: int, stop: threading.Event) -> bool:
        """Sleep until the host clock reaches ``t_ns``; False at once if ``stop`` is set."""
        wait = (t_ns - time.time_ns()) / 1e9
        return not stop.wait(wait) if wait > 0 else not stop.is_set()


class VirtualClock:
    """Simulated true time that only moves when told to (the simulator, tests)."""

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

    def wait_until(self, t_ns: int, stop: threading.Event) -> bool:
        """Virtual waiting: time jumps to ``t_ns`` (never back); False if ``stop`` is set."""
        if stop.is_set():
            return False
        self._now = max(self._now, int(t_ns))
        return True

    def set(self, t_ns: int) -> None:
        if t_ns < self._now:
            raise ValueError("virtual time cannot go backwards")
        self._now = int(t_ns)


HOST_CLOCK = HostClock()
