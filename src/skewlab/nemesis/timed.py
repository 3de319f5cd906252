"""Windowed faults applied on schedule by a thread, shared by the link and NTP nemeses.

Each fault gives a "start" transition at its start and, if it has a duration, an "end" one.
They are applied in time order, each at its wall-clock instant, and recorded when applied.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection
from typing import Self

from skewlab.nemesis.record import FaultRecorder
from skewlab.nemesis.schedule import FaultSpec

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


class TimedNemesis:
    """Runs ``transition`` for each planned transition at its instant, in a daemon thread;
    a transition that fails is kept in ``errors`` (not recorded), the others are recorded."""

    thread_name = "nemesis"

    def __init__(self, faults: list[FaultSpec], t0_ns: int, kinds: Collection[str],
                 recorder: FaultRecorder | None) -> None:  # fmt: skip
        self.recorder = recorder
        self.plan = transitions(faults, t0_ns, kinds)
        self.applied = 0  # transitions made
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)

    def transition(self, f: FaultSpec, phase: str) -> str | None:
        """Make one transition now; the reason it could not be made, or None."""
        raise NotImplementedError

    def start(self) -> Self:
        if self.plan:
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        for due, _, index, phase, f in self.plan:
            wait = (due - time.time_ns()) / 1e9
            if wait > 0 and self._stop.wait(wait):
                return
            why = self.transition(f, phase)
            if why is not None:
                self.errors.append(f"faults[{index}] {phase}: {why}")
                continue
            self.applied += 1
            if self.recorder is not None:
                self.recorder.record(index, f.kind, f.target(), phase, time.time_ns(), f.detail())
