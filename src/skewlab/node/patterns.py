"""Workload patterns: the coordinator's schedule as inter-send delays in integer ns.

Event i is due at start + (sum of the first i delays); the delay after the last event is the
gap the schedule would leave before a next one. Modes (``WorkloadSpec.effective_mode``):

- ``cycle``: the named cycle (fast 10 ms, medium 50 ms, slow 100 ms, very_slow 500 ms) repeated.
- ``interval``: a fixed interval.
- ``duration``: ``events`` spread evenly over ``duration_s`` (delays differ by at most 1 ns and
  sum to exactly the duration).
- ``poisson``: exponential delays of mean 1/``rate_per_s``, from ``random.Random(seed)``.
- ``bursts``: ``burst_size`` events ``burst_spacing_ms`` apart, then ``burst_gap_ms``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from itertools import cycle, islice

from skewlab import timebase
from skewlab.spec import CYCLE_DELAYS_MS, ExperimentSpec, WorkloadSpec

NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000


def _cycle_steps(w: WorkloadSpec) -> list[int]:
    mode = w.effective_mode
    if mode == "cycle":
        return [round(CYCLE_DELAYS_MS[p] * NS_PER_MS) for p in w.pattern.split(",")]
    if mode == "interval":
        assert w.interval_ms is not None
        return [round(w.interval_ms * NS_PER_MS)]
    if mode == "bursts":
        assert w.burst_gap_ms is not None
        spacing = round(w.burst_spacing_ms * NS_PER_MS)
        return [spacing] * (w.burst_size - 1) + [round(w.burst_gap_ms * NS_PER_MS)]
    raise ValueError(f"mode {mode!r} is not a repeating cycle")


def delays_ns(w: WorkloadSpec, seed: int = 0) -> Iterator[int]:
    """Yield the delay to wait *after* each event, ``w.events`` values in all."""
    mode = w.effective_mode
    n = w.events
    if mode == "duration":
        assert w.duration_s is not None
        total = round(w.duration_s * NS_PER_S)
        return ((i + 1) * total // n - i * total // n for i in range(n))
    if mode == "poisson":
        assert w.rate_per_s is not None
        rng = random.Random(seed)
        rate = w.rate_per_s
        return (round(rng.expovariate(rate) * NS_PER_S) for _ in range(n))
    return islice(cycle(_cycle_steps(w)), n)


def expected_duration_ns(w: WorkloadSpec, seed: int = 0) -> int:
    """Total scheduled time of the run: exact, except for ``poisson`` (its mean, events/rate)."""
    mode = w.effective_mode
    if mode == "duration":
        assert w.duration_s is not None
        return round(w.duration_s * NS_PER_S)
    if mode == "poisson":
        assert w.rate_per_s is not None
        return round(w.events * NS_PER_S / w.rate_per_s)
    steps = _cycle_steps(w)
    full, rest = divmod(w.events, len(steps))
    return full * sum(steps) + sum(steps[:rest])


def commit_wait_delays_ms(delays_s: list[float], max_fraction: float, run_ns: int) -> list[int]:
    """Effective commit-wait Δ values in whole ms (column names use them).

    Every Δ is scaled by one factor so that the longest is at most ``max_fraction`` of the
    run's scheduled duration ``run_ns`` (factor ≤ 1; 0 disables scaling); at least 1 ms each.
    """
    if not delays_s:
        return []
    longest_ns = max(delays_s) * NS_PER_S
    scale = 1.0
    if max_fraction > 0:
        scale = min(1.0, max_fraction * run_ns / longest_ns)
    return sorted({max(1, round(d * 1000 * scale)) for d in delays_s})


def effective_commit_wait_ms(spec: ExperimentSpec) -> list[int]:
    """The experiment's commit-wait Δ values (ms), scaled to its scheduled duration."""
    cw = spec.commit_wait
    return commit_wait_delays_ms(
        cw.delays_s, cw.max_fraction, expected_duration_ns(spec.workload, spec.seed)
    )


def drain_ns(drain_s: float, commit_wait_ms: list[int]) -> int:
    """How long after the coordinator's last send the workers are stopped: ``run.drain_s``,
    and at least the longest commit-wait Δ plus 250 ms, so every receipt's last re-evaluation
    falls due before the stop (the launcher waits this long; the simulator stops there too)."""
    cw_ns = max(commit_wait_ms) * NS_PER_MS + 250 * NS_PER_MS if commit_wait_ms else 0
    return max(round(drain_s * NS_PER_S), cw_ns)


PACER_MIN_SLEEP_NS = 500_000  # batch mode: one wakeup per 0.5 ms at most


class Pacer:
    """Waits for each event's due instant on a monotonic clock.

    Precise mode sleeps until ``spin_ns`` before the due instant, then spins. When the delay
    before an event is shorter than ``batch_below_ns`` (shorter than the OS can sleep
    precisely), it only sleeps, at least ``min_sleep_ns`` at a time, and never spins: every
    event that fell due meanwhile then goes out back to back, a batch per wakeup, each recording
    its own lateness. (A wakeup costs the coordinator, and the workers it then wakes, more CPU
    than several sends: ~25 µs for a 40 µs sleep on this 2-core VM.) The caller records the
    returned lateness (actual − due, ns), so imprecision is measured, never hidden.
    """

    def __init__(
        self,
        spin_ns: int = 200_000,
        batch_below_ns: int = 500_000,
        clock: Callable[[], int] | None = None,
        sleep: Callable[[float], None] | None = None,
        min_sleep_ns: int = PACER_MIN_SLEEP_NS,
    ) -> None:
        self.spin_ns = spin_ns
        self.batch_below_ns = batch_below_ns
        self.min_sleep_ns = min_sleep_ns
        self.clock = clock or timebase.monotonic_ns
        self.sleep = sleep or timebase.sleep
        self.sleeps = 0  # wakeups used (report)

    def wait_until(self, due_ns: int, delay_before_ns: int) -> int:
        """Block until ``due_ns``; return the clock reading at release (≥ due_ns)."""
        clock = self.clock
        now = clock()
        if now >= due_ns:
            return now
        if delay_before_ns < self.batch_below_ns:
            while now < due_ns:
                self.sleep(max(due_ns - now, self.min_sleep_ns) / 1e9)
                self.sleeps += 1
                now = clock()
            return now
        rem = due_ns - now
        if rem > self.spin_ns:
            self.sleep((rem - self.spin_ns) / 1e9)
            self.sleeps += 1
        while (now := clock()) < due_ns:
            pass
        return now
