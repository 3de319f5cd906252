"""Workload schedules: each mode's delays, durations, validation, commit-wait scaling, pacer,
and a simulated run following them."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest

from skewlab.node.patterns import (
    Pacer,
    commit_wait_delays_ms,
    delays_ns,
    expected_duration_ns,
)
from skewlab.sim.simulate import simulate
from skewlab.spec import SpecError, WorkloadSpec, from_dict
from skewlab.trace import read_parts


def test_named_cycle() -> None:
    w = WorkloadSpec(events=8, pattern="slow,fast,fast,medium")
    ms = 1_000_000
    assert list(delays_ns(w)) == [100 * ms, 10 * ms, 10 * ms, 50 * ms] * 2
    w = WorkloadSpec(events=3, pattern="very_slow, fast")
    assert list(delays_ns(w)) == [500 * ms, 10 * ms, 500 * ms]
    assert expected_duration_ns(w) == 1010 * ms


def test_default_is_the_cycle_and_interval_overrides() -> None:
    w = WorkloadSpec()
    assert w.effective_mode == "cycle"
    d = list(delays_ns(w))
    assert len(d) == 300 and sum(d) == expected_duration_ns(w)
    w = WorkloadSpec(events=5, interval_ms=0.05)
    assert w.effective_mode == "interval"
    assert list(delays_ns(w)) == [50_000] * 5
    assert expected_duration_ns(w) == 250_000


def test_duration_spreads_events_exactly() -> None:
    w = WorkloadSpec(events=7, mode="duration", duration_s=1.0)
    d = list(delays_ns(w))
    assert len(d) == 7
    assert sum(d) == 1_000_000_000 == expected_duration_ns(w)
    assert max(d) - min(d) <= 1  # 1e9 / 7 is not whole: delays differ by at most 1 ns


def test_poisson_is_seeded_and_has_the_rate() -> None:
    rate = 2000.0
    w = WorkloadSpec(events=20_000, mode="poisson", rate_per_s=rate)
    a = list(delays_ns(w, seed=5))
    assert a == list(delays_ns(w, seed=5))
    assert a != list(delays_ns(w, seed=6))
    n = len(a)
    mean = sum(a) / n
    # exponential: sd = mean, so the sample mean is within 5 standard errors of 1/rate
    assert abs(mean - 1e9 / rate) < 5 * (1e9 / rate) / math.sqrt(n)
    # memoryless shape: P(X > mean) = e^-1, checked within 5 binomial standard errors
    p = math.exp(-1)
    frac = sum(1 for x in a if x > 1e9 / rate) / n
    assert abs(frac - p) < 5 * math.sqrt(p * (1 - p) / n)
    # the same stream as random.Random(seed).expovariate, rounded to whole ns
    rng = random.Random(5)
    assert a[:3] == [round(rng.expovariate(rate) * 1e9) for _ in range(3)]
    assert expected_duration_ns(w) == round(20_000 * 1e9 / rate)


def test_bursts() -> None:
    w = WorkloadSpec(events=7, mode="bursts", burst_size=3, burst_spacing_ms=0.1, burst_gap_ms=20)
    assert list(delays_ns(w)) == [100_000, 100_000, 20_000_000] * 2 + [100_000]
    assert expected_duration_ns(w) == 2 * 20_200_000 + 100_000


@pytest.mark.parametrize(
    ("mode", "key"),
    [("interval", "interval_ms"), ("duration", "duration_s"), ("poisson", "rate_per_s"),
     ("bursts", "burst_gap_ms")],
)  # fmt: skip
def test_mode_requires_its_field(mode: str, key: str) -> None:
    with pytest.raises(SpecError) as ei:
        from_dict({"workload": {"mode": mode}})
    assert "workload" in str(ei.value) and key in str(ei.value)


def test_commit_wait_scaling() -> None:
    s = 1_000_000_000
    # a long run keeps the configured delays
    assert commit_wait_delays_ms([30, 60], 0.25, 3600 * s) == [30_000, 60_000]
    # a 20 s run: the longest may be 5 s, so both scale by 5/60
    assert commit_wait_delays_ms([30, 60], 0.25, 20 * s) == [2500, 5000]
    assert commit_wait_delays_ms([30, 60], 0.0, 20 * s) == [30_000, 60_000]
    assert commit_wait_delays_ms([], 0.25, 20 * s) == []
    assert commit_wait_delays_ms([30, 60], 0.25, 0) == [1]  # never below 1 ms; equal ones merge


class FakeTime:
    """A clock that advances only when slept on (plus a fixed overshoot), and per read."""

    def __init__(self, overshoot: int = 0, per_read: int = 0) -> None:
        self.t = 0
        self.overshoot = overshoot
        self.per_read = per_read
        self.slept: list[float] = []

    def clock(self) -> int:
        self.t += self.per_read
        return self.t

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.t += round(s * 1e9) + self.overshoot


def test_pacer_sleeps_then_spins_for_long_intervals() -> None:
    ft = FakeTime(overshoot=0, per_read=1_000)
    p = Pacer(spin_ns=200_000, batch_below_ns=500_000, clock=ft.clock, sleep=ft.sleep)
    got = p.wait_until(10_000_000, 10_000_000)
    assert got >= 10_000_000
    assert got - 10_000_000 <= 1_000  # released by the spin within one clock read
    assert len(ft.slept) == 1
    # it slept until the spin window, then spun: the sleep was (due − now − spin)
    assert ft.slept[0] == pytest.approx((10_000_000 - 1_000 - 200_000) / 1e9)


def test_pacer_batches_short_intervals() -> None:
    """Intervals below the batch threshold: sleep only; events due meanwhile go at once."""
    ft = FakeTime(overshoot=80_000, per_read=0)
    p = Pacer(spin_ns=200_000, batch_below_ns=500_000, clock=ft.clock, sleep=ft.sleep)
    due, lateness = 0, []
    for _ in range(40):
        got = p.wait_until(due, 20_000)
        lateness.append(got - due)
        due += 20_000
    assert all(x >= 0 for x in lateness)
    assert p.sleeps < 40  # fewer wakeups than events: several events per wakeup
    # late by at most one sleep (its floor) + its overshoot + an interval
    assert max(lateness) <= p.min_sleep_ns + 100_000
    assert all(s >= p.min_sleep_ns / 1e9 for s in ft.slept)  # never a wakeup per event


def test_pacer_sleep_floor_bounds_the_wakeups() -> None:
    """At 50,000 events/s (20 µs apart) a 500 µs floor means one wakeup per ~25 events, each
    event's lateness at most the floor + the OS's overshoot + one interval."""
    ft = FakeTime(overshoot=60_000, per_read=0)
    p = Pacer(min_sleep_ns=500_000, clock=ft.clock, sleep=ft.sleep)
    due, lateness = 0, []
    for _ in range(2_000):
        lateness.append(p.wait_until(due, 20_000) - due)
        due += 20_000
    assert p.sleeps <= 2_000 * 20_000 // 500_000 + 1
    assert min(lateness) >= 0 and max(lateness) <= 500_000 + 60_000 + 20_000


@pytest.mark.parametrize("mode", ["poisson", "bursts"])
def test_patterns_in_a_simulated_run(tmp_path: Path, mode: str) -> None:
    """A whole run in virtual time follows the mode's schedule exactly: the sends' recorded
    scheduled delays are ``delays_ns`` and their true instants are spaced by them; both
    workers receive every event (formerly a real run per mode, ~3 s each; the real
    coordinator pacing a bursts schedule is tests/integration/test_runtime_runs.py::
    test_four_workers_exact_accounting)."""
    wl = {"events": 150, "mode": mode, "rate_per_s": 500, "burst_size": 10, "burst_gap_ms": 20}
    spec = from_dict({"workload": wl, "run": {"warmup_s": 0.5, "drain_s": 0.3}})
    res = simulate(spec, tmp_path)
    sends = read_parts(res.node_dir("coordinator"), "events")
    want = list(delays_ns(spec.workload, spec.seed))
    assert sends.column("scheduled_delay_ns").to_pylist() == want
    truth = sends.sort_by("event_id").column("truth_ns").to_numpy()
    assert np.diff(truth).tolist() == want[:-1]
    for w in ("B", "C"):
        c = json.loads(res.node_counts_path(w).read_text())
        assert c["received"] == 150 and c["lost"] == 0


def test_strided_add_many_equals_add() -> None:
    """The coordinator takes its pacing-error sample a batch of rows at a time: the same values
    as one ``add`` per stride-th event, and no more than the buffer holds."""
    import numpy as np

    from skewlab.node.counting import Strided

    one, many = Strided(1_000, cap=300), Strided(1_000, cap=300)
    values = np.arange(1_000, dtype=np.int64) * 7 - 3
    for i, v in enumerate(values.tolist()):
        if i % one.stride == 0:
            one.add(v)
    for start in range(0, 1_000, 128):
        ids = np.arange(start, min(start + 128, 1_000))
        many.add_many(values[ids][ids % many.stride == 0])
    assert one.stride == many.stride == 3
    assert list(many.values()) == list(one.values()) and len(one.values()) == 334
