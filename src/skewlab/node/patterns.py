"""Workload patterns: the coordinator's schedule of inter-send delays in integer ns."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import cycle, islice

from skewlab.spec import CYCLE_DELAYS_MS, WorkloadSpec


def delays_ns(w: WorkloadSpec, seed: int = 0) -> Iterator[int]:
    """Yield the delay to wait *after* each event, ``w.events`` values in all."""
    if w.interval_ms is not None:
        step = round(w.interval_ms * 1_000_000)
        return iter([step] * w.events)
    steps = [round(CYCLE_DELAYS_MS[p] * 1_000_000) for p in w.pattern.split(",")]
    return islice(cycle(steps), w.events)


def expected_duration_ns(w: WorkloadSpec, seed: int = 0) -> int:
    return sum(delays_ns(w, seed))
