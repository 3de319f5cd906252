"""Windowed faults applied on schedule by a thread, shared by the link and NTP nemeses.

Each fault gives a "start" transition at its start and, if it has a duration, an "end" one.
They are applied in time order, each at its wall-clock instant, and recorded when applied.
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from typing import Any, Self

from skewlab.nemesis.record import FaultRecorder
from skewlab.nemesis.schedule import FaultSpec
from skewlab.timebase import HOST_CLOCK, Scheduler

# (due ns since the epoch, tie order, fault index in the spec, "start" | "end", the fault)
Transition = tuple[int, int, int, str, FaultSpec]


def transitions(faults: list[FaultSpec], t0_ns: int, kinds: Collection[str]) -> list[Transition]:
    """The start/end transitions of the faults whose kind is in ``kinds``, in time order; at
    a tie, in spec order, with a fault's end before its own start."""
    plan: list[Transition] = []
    for i, f in enumerate(faults):
        if f.kind not in kinds:
            continue
        plan.append((f.start_ns(t0_ns), 2 * i + 1, i, "start", f))
        end = f.end_ns(t0_ns)
        if end is not None:
            plan.append((end, 2 * i, i, "end", f))
    return sorted(plan, key=lambda p: (p[0], p[1]))


FOREVER_NS = 1 << 62  # the end of a fault without a duration


def windows(faults: list[FaultSpec], t0_ns: int, kinds: Collection[str],
            **match: Any) -> list[tuple[int, int, FaultSpec]]:  # fmt: skip
    """[start, end) true-time windows of the faults of ``kinds`` whose fields equal ``match``
    (no duration: FOREVER_NS), from the same transitions the nemesis thread applies; the
    simulator asks them which fault is in force at an instant (:func:`in_force`)."""
    out: list[tuple[int, int, FaultSpec]] = []
    for due, _, _i, phase, f in transitions(faults, t0_ns, kinds):
        if phase == "start" and all(getattr(f, k) == v for k, v in match.items()):
            end = f.end_ns(t0_ns)
            out.append((due, FOREVER_NS if end is None else end, f))
    return out


def in_force(wins: list[tuple[int, int, FaultSpec]], t_ns: int) -> tuple | None:
    """The first window of ``wins`` in force at ``t_ns`` (start ≤ t < end), or None."""
    return next((w for w in wins if w[0] <= t_ns < w[1]), None)


class TimedNemesis:
    """Runs ``transition`` for each planned transition at its instant, in a daemon thread;
    a transition that fails is kept in ``errors`` (not recorded), the others are recorded."""

    thread_name = "nemesis"

    def __init__(
        self,
        faults: list[FaultSpec],
        t0_ns: int,
        kinds: Collection[str],
        recorder: FaultRecorder | None,
        clock: Scheduler = HOST_CLOCK,
    ) -> None:
        self.recorder = recorder
        self.clock = clock
        self.plan = transitions(faults, t0_ns, kinds)
        self.applied = 0  # transitions made
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)

    def transition(self, f: FaultSpec, phase: str) -> str | None:
        """Make one transition now; the reason it could not be made, or None."""
        raise NotImplementedError

    def start(self) -> Self:
        """Make every transition already due now, in the caller's thread (a fault at
        ``at_s = 0`` is in place before the caller reports itself ready), then the rest on
        schedule in the thread."""
        while self.plan and self.plan[0][0] <= self.clock.now_ns():
            self._make(self.plan.pop(0))
        if self.plan:
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        for t in self.plan:
            if not self.clock.wait_until(t[0], self._stop):
                return
            self._make(t)

    def _make(self, t: Transition) -> None:
        _due, _, index, phase, f = t
        why = self.transition(f, phase)
        if why is not None:
            self.errors.append(f"faults[{index}] {phase}: {why}")
            return
        self.applied += 1
        if self.recorder is not None:
            self.recorder.record(index, f.kind, f.target(), phase, self.clock.now_ns(),
                                 f.detail())  # fmt: skip
