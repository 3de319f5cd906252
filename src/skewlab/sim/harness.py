"""Virtual-time harness: one emulated node, modelled NTP exchanges and the clock sources,
run over hours of emulated time in seconds, with true time known at every reading.

True time is a :class:`~skewlab.timebase.VirtualClock` the harness moves forward; the node
reads it through its oscillator (and optional discipline), exactly as a node process reads the
host clock. An NTP exchange is modelled on true time: the request leaves at t (T1 = local(t)),
reaches the server after the outbound delay (T2 = true time: the server is the reference),
leaves after the hold time (T3) and arrives after the return delay (T4 = local). The arithmetic
is ``skewlab.ntp.client.compute_sample``, as for real packets.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from skewlab.clocks.base import ClockSource, Reading
from skewlab.clocks.discipline import Discipline
from skewlab.clocks.oscillator import NodeClock, Oscillator
from skewlab.clocks.sources import make_sources
from skewlab.clocks.sync import SyncState
from skewlab.ntp.client import NtpError, compute_sample
from skewlab.ntp.sample import NtpSample
from skewlab.timebase import VirtualClock

NS_PER_S = 1_000_000_000
NS_PER_US = 1_000


@dataclass(frozen=True, slots=True)
class DelayModel:
    """One-way delay: base + exponential jitter (mean ``jitter_us``), capped at ``max_us``."""

    base_us: float = 100.0
    jitter_us: float = 50.0
    max_us: float = 5000.0

    def draw_ns(self, rng: random.Random) -> int:
        j = rng.expovariate(1.0 / self.jitter_us) if self.jitter_us > 0 else 0.0
        return round(min(self.base_us + j, self.max_us) * NS_PER_US)


@dataclass(frozen=True, slots=True)
class PathModel:
    """The node ↔ server path: per-direction delays, loss per exchange, server hold time."""

    out: DelayModel = field(default_factory=DelayModel)  # client → server
    back: DelayModel = field(default_factory=DelayModel)  # server → client
    loss: float = 0.0  # probability that an exchange gets no reply
    hold_us: float = 10.0  # server receive → transmit
    root_delay_ns: int = 0  # advertised by the server (0: stratum 1)
    root_dispersion_ns: int = 0
    server_precision: int = -20  # log2 s


@dataclass(frozen=True, slots=True)
class Outage:
    """A true-time interval [start_s, end_s) (from t0) in which the server does not answer."""

    start_s: float
    end_s: float


class Harness:
    """Drives one node's oscillator, NTP polling and sources in virtual time."""

    def __init__(
        self,
        oscillator: Oscillator,
        sources: list[str],
        source_params: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        path: PathModel | None = None,
        poll_s: float = 16.0,
        burst: int = 4,
        burst_gap_ms: float = 2.0,
        outages: tuple[Outage, ...] = (),
        discipline: Discipline | None = None,
        seed: int = 1,
    ) -> None:
        self.t0_ns = oscillator.t0_ns
        self.host = VirtualClock(self.t0_ns)
        self.osc = oscillator
        self.clock = NodeClock(oscillator, self.host)
        self.state = SyncState(clock=self.clock)
        if discipline is not None:
            oscillator.attach(discipline)
            discipline.follow(self.state)
        self.sources: list[ClockSource] = make_sources(sources, self.state, source_params)
        self.path = path or PathModel()
        self.poll_ns = round(poll_s * NS_PER_S)
        self.burst = burst
        self.burst_gap_ns = round(burst_gap_ms * 1e6)
        self.outages = [
            (self.t0_ns + round(o.start_s * NS_PER_S), self.t0_ns + round(o.end_s * NS_PER_S))
            for o in outages
        ]
        self.rng = random.Random(seed)
        self.samples: list[NtpSample] = []
        self.exchanges = 0
        self.lost = 0
        self.failed_polls = 0
        self.next_poll_ns = self.t0_ns

    def source(self, name: str) -> ClockSource:
        return next(s for s in self.sources if s.name == name)

    def _in_outage(self, t: int) -> bool:
        return any(a <= t < b for a, b in self.outages)

    def exchange(self, t1_true: int) -> tuple[NtpSample, int] | None:
        """One modelled exchange starting at true time t1_true: (sample, true T4) or None."""
        self.exchanges += 1
        p = self.path
        rng = self.rng
        d_out = p.out.draw_ns(rng)
        d_back = p.back.draw_ns(rng)
        lost = rng.random() < p.loss
        if lost or self._in_outage(t1_true):
            self.lost += 1
            return None
        t2 = t1_true + d_out
        t3 = t2 + round(p.hold_us * NS_PER_US)
        t4_true = t3 + d_back
        osc = self.osc
        try:
            s = compute_sample(
                "sim",
                osc.local_at(t1_true),
                t2,
                t3,
                osc.local_at(t4_true),
                root_delay_ns=p.root_delay_ns,
                root_dispersion_ns=p.root_dispersion_ns,
                precision=p.server_precision,
                truth_t1_ns=t1_true,
                truth_t4_ns=t4_true,
            )
        except NtpError:  # e.g. a step inside the exchange made δ negative
            self.lost += 1
            return None
        return s, t4_true

    def poll(self, t_true: int) -> NtpSample | None:
        """A burst at true time t; the minimum-delay sample is added to the sync state."""
        best: tuple[NtpSample, int] | None = None
        t = t_true
        for _ in range(self.burst):
            r = self.exchange(t)
            if r is not None and (best is None or r[0].delay_ns < best[0].delay_ns):
                best = r
            t += self.burst_gap_ns
        if best is None:
            self.failed_polls += 1
            self.host.set(max(self.host.now_ns(), t))
            self.state.note_failure()
            return None
        s, t4_true = best
        gap, step_gap = self.osc.gaps_at(t4_true)
        self.host.set(max(self.host.now_ns(), t))
        self.samples.append(s)
        self.state.add(s, gap_ns=gap, step_gap_ns=step_gap)
        return s

    def read_all(self, t_true: int) -> tuple[int, int, list[Reading]]:
        """Move true time to t and read every source: (truth, local, readings)."""
        self.host.set(t_true)
        local = self.osc.local_at(t_true)
        return t_true, local, [s.read(local, t_true) for s in self.sources]

    def run(
        self, duration_s: float, read_every_ms: float
    ) -> Iterator[tuple[int, int, list[Reading]]]:
        """Yield (truth, local, readings) at reading instants spread uniformly at random with
        mean spacing ``read_every_ms``, polling NTP every ``poll_s`` in between."""
        end = self.t0_ns + round(duration_s * NS_PER_S)
        mean = read_every_ms * 1e6
        rng = random.Random(self.rng.random())
        t = self.host.now_ns()
        while True:
            t += max(1, round(rng.uniform(0.0, 2.0 * mean)))
            if t >= end:
                return
            while self.next_poll_ns <= t:
                self.poll(self.next_poll_ns)
                self.next_poll_ns += self.poll_ns
            if t < self.host.now_ns():  # reading fell inside a burst: read just after it
                t = self.host.now_ns()
            yield self.read_all(t)
