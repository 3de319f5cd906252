"""Emulated node clocks: a node reads true time only through its own oscillator.

local(t) = t + offset0 + drift·(t − t0)   (all integer ns; drift in parts per billion)

Sign convention: ``offset_ns`` > 0 means the node's clock is *ahead* of true time. The NTP
offset θ (reference − local) of such a node is therefore negative.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from skewlab.timebase import HOST_CLOCK, TimeSource


@dataclass(slots=True)
class Oscillator:
    """Deterministic mapping from true time to a node's local time."""

    offset_ns: int = 0  # local − true at t0
    drift_ppb: int = 0  # parts per billion; +40 ppm = +40_000 ppb (local runs fast)
    t0_ns: int = 0  # true time at which offset_ns holds

    def local_at(self, truth_ns: int) -> int:
        return truth_ns + self.offset_ns + (truth_ns - self.t0_ns) * self.drift_ppb // 1_000_000_000

    def error_at(self, truth_ns: int) -> int:
        """local − true at a true instant, ns."""
        return self.local_at(truth_ns) - truth_ns


@dataclass(slots=True)
class NodeClock:
    """A node's view of time: one true-time read mapped through its oscillator."""

    oscillator: Oscillator = field(default_factory=Oscillator)
    host: TimeSource = HOST_CLOCK

    def now(self) -> tuple[int, int]:
        """Return (truth_ns, local_ns) from one read of the host clock."""
        t = self.host.now_ns()
        return t, self.oscillator.local_at(t)

    def local_ns(self) -> int:
        return self.oscillator.local_at(self.host.now_ns())
