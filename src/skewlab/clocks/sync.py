"""The sync state a node's clock sources stand on: the NTP samples measured so far.

The NTP poller (node runtime, or ``sim.node.NodeSim`` in virtual time) pushes samples here;
sources subscribe to do their (possibly expensive) bookkeeping at sample time so that ``read``
stays cheap.

Monotonic time: when ``clock`` (the node's :class:`~skewlab.clocks.oscillator.NodeClock`) is
set, every sample is also placed on the node's monotonic timescale: ``add`` records the gap
``local − monotonic`` at the sample (``latest_gap_ns``, so monotonic T4 = T4 − gap) and the
step gap (steps only, ``latest_step_gap_ns``). Sources read ``clock.gaps_ns()`` at read time to
map a local reading to monotonic time and to notice steps. Without a clock the gap is taken as
0 (no step detection possible).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from skewlab.ntp.sample import NtpSample

if TYPE_CHECKING:
    from skewlab.clocks.oscillator import NodeClock


@dataclass(slots=True)
class SyncState:
    """Latest NTP sample, the sample history, and listeners called on every new sample."""

    latest: NtpSample | None = None
    history: list[NtpSample] = field(default_factory=list)
    max_history: int = 4096
    listeners: list[Callable[[NtpSample], None]] = field(default_factory=list)
    failures: int = 0
    clock: NodeClock | None = None  # the node's clock, for monotonic time and step detection
    latest_gap_ns: int = 0  # local − monotonic at the latest sample's T4
    latest_step_gap_ns: int = 0  # the part of that gap made by steps (not by slewing)
    latest_mono_ns: int | None = None  # the latest sample's T4 on the monotonic timescale

    def add(
        self, sample: NtpSample, gap_ns: int | None = None, step_gap_ns: int | None = None
    ) -> None:
        """Record a sample. ``gap_ns``/``step_gap_ns`` are the gaps at T4 when the caller knows
        them exactly (the poller, on an emulated clock); otherwise they are read from ``clock``
        now."""
        if gap_ns is None:
            if self.clock is not None:
                gap_ns, step_gap_ns = self.clock.gaps_ns()
            else:
                gap_ns = 0
        if step_gap_ns is None:
            step_gap_ns = gap_ns
        self.latest = sample
        self.latest_gap_ns = gap_ns
        self.latest_step_gap_ns = step_gap_ns
        self.latest_mono_ns = sample.t4_ns - gap_ns
        self.history.append(sample)
        if len(self.history) > self.max_history:
            del self.history[: len(self.history) - self.max_history]
        for fn in self.listeners:
            fn(sample)

    def note_failure(self) -> None:
        self.failures += 1

    def subscribe(self, fn: Callable[[NtpSample], None]) -> None:
        self.listeners.append(fn)
