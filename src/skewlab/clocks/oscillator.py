"""Emulated node clocks: a node reads true time only through its own oscillator.

  raw(t)   = t + offset0 + drift·(t − t0) + wander(t) + Σ frequency jumps     (monotonic)
  local(t) = raw(t) + Σ steps + strobe(t) + discipline(raw(t))                 (realtime)

All integer ns; drift in parts per billion. ``raw`` is the node's *monotonic* reading: it never
steps and is not slewed by a discipline (like Linux CLOCK_MONOTONIC_RAW). ``local`` is the
node's system (realtime) clock. Their difference, the *gap* ``local − monotonic``, changes only
when the realtime clock is stepped, strobed or slewed: sources use it to detect steps.

Sign convention: ``offset_ns`` > 0 means the node's clock is *ahead* of true time. The NTP
offset θ (reference − local) of such a node is therefore negative.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from skewlab.clocks.faults import ClockFault
from skewlab.timebase import HOST_CLOCK, TimeSource

NS_PER_S = 1_000_000_000


class Servo(Protocol):
    """What an oscillator asks of its discipline (``clocks/discipline.Discipline``): the
    correction slewed into the realtime clock at monotonic readings. A protocol, so that this
    module does not import the discipline, which stands on the sync state, which reads this
    module's clocks."""

    def correction_at(self, mono_ns: int) -> int: ...

    def correction_at_array(self, mono_ns: np.ndarray) -> np.ndarray: ...


class Wander:
    """Seeded random-walk frequency: on a grid of ``step_s`` the frequency takes a Gaussian
    step of σ·√step_s ppb; the phase is its exact integral (piecewise linear). Deterministic
    for a seed; the path is generated lazily in grid order so any query order gives the same
    values."""

    __slots__ = ("_freq", "_phase", "_rng", "_sd", "step_ns", "t0_ns")

    def __init__(self, sigma_ppb_per_sqrt_s: float, seed: int, t0_ns: int, step_s: float = 1.0):
        self.step_ns = max(1, round(step_s * NS_PER_S))
        self.t0_ns = t0_ns
        self._sd = sigma_ppb_per_sqrt_s * math.sqrt(step_s)
        self._rng = random.Random(seed)
        self._freq: list[float] = [0.0]  # ppb during grid cell k
        self._phase: list[float] = [0.0]  # ns at the start of grid cell k

    def _extend(self, k: int) -> None:
        freq, phase, step, rng, sd = self._freq, self._phase, self.step_ns, self._rng, self._sd
        while len(freq) <= k:
            phase.append(phase[-1] + freq[-1] * step / NS_PER_S)
            freq.append(freq[-1] + rng.gauss(0.0, sd))

    def phase_ns(self, truth_ns: int) -> float:
        """Accumulated phase (ns) of the wander at a true instant (0 before t0)."""
        dt = truth_ns - self.t0_ns
        if dt <= 0:
            return 0.0
        k = dt // self.step_ns
        if k >= len(self._freq):
            self._extend(k)
        return self._phase[k] + self._freq[k] * (dt - k * self.step_ns) / NS_PER_S

    def phase_ns_array(self, truth_ns: np.ndarray) -> np.ndarray:
        """``round(phase_ns(t))`` for an int64 array of true instants (same float operations,
        numpy's round-half-even as Python's ``round``): the simulator's vectorized path."""
        dt = np.asarray(truth_ns, dtype=np.int64) - self.t0_ns
        if dt.size == 0:
            return np.zeros(0, dtype=np.int64)
        k = np.where(dt > 0, dt // self.step_ns, 0)
        top = int(k.max())
        if top >= len(self._freq):
            self._extend(top)
        freq = np.asarray(self._freq, dtype=np.float64)[k]
        phase = np.asarray(self._phase, dtype=np.float64)[k]
        into = (dt - k * self.step_ns).astype(np.float64)
        out = np.rint(phase + freq * into / NS_PER_S).astype(np.int64)
        return np.where(dt > 0, out, 0)

    def freq_ppb(self, truth_ns: int) -> float:
        """Wander frequency (ppb) at a true instant."""
        dt = truth_ns - self.t0_ns
        if dt <= 0:
            return 0.0
        k = dt // self.step_ns
        if k >= len(self._freq):
            self._extend(k)
        return self._freq[k]


@dataclass(slots=True)
class Oscillator:
    """Deterministic mapping from true time to a node's local (realtime) and monotonic time."""

    offset_ns: int = 0  # local − true at t0
    drift_ppb: int = 0  # parts per billion; +40 ppm = +40_000 ppb (local runs fast)
    t0_ns: int = 0  # true time at which offset_ns holds
    wander_ppb: float = 0.0  # random-walk frequency wander, σ in ppb per √s (0: none)
    seed: int = 0  # seed of the wander path
    faults: tuple[ClockFault, ...] = ()  # scheduled steps / frequency jumps / strobes
    discipline: Servo | None = None  # optional servo slewing the realtime clock
    _wander: Wander | None = field(default=None, init=False, repr=False)
    plain: bool = field(default=True, init=False)  # True: no wander, faults nor discipline
    gapless: bool = field(default=True, init=False)  # True: no steps/strobes/discipline: gap 0

    def __post_init__(self) -> None:
        self.faults = tuple(sorted(self.faults, key=lambda f: f.at_ns))
        if self.wander_ppb:
            self._wander = Wander(self.wander_ppb, self.seed, self.t0_ns)
        self.attach(self.discipline)

    def attach(self, discipline: Servo | None) -> None:
        """Attach (or remove) a discipline servo after construction."""
        self.discipline = discipline
        self.plain = self._wander is None and not self.faults and discipline is None
        self.gapless = discipline is None and all(f.kind == "freq" for f in self.faults)

    def monotonic_at(self, truth_ns: int) -> int:
        """The monotonic reading (never steps, never slewed) at a true instant."""
        t = truth_ns
        raw = t + self.offset_ns + (t - self.t0_ns) * self.drift_ppb // NS_PER_S
        if self.plain:
            return raw
        if self._wander is not None:
            raw += round(self._wander.phase_ns(t))
        for f in self.faults:
            if f.at_ns > t:
                break
            if f.kind == "freq":
                raw += (t - f.at_ns) * f.delta_ppb // NS_PER_S
        return raw

    def monotonic_at_array(self, truth_ns: np.ndarray) -> np.ndarray:
        """``monotonic_at`` for an int64 array of true instants, exactly (integer ns)."""
        t = np.asarray(truth_ns, dtype=np.int64)
        raw = t + self.offset_ns + _mul_div_s(t - self.t0_ns, self.drift_ppb)
        if self._wander is not None:
            raw = raw + self._wander.phase_ns_array(t)
        for f in self.faults:
            if f.kind == "freq":
                raw = raw + np.where(t >= f.at_ns, _mul_div_s(t - f.at_ns, f.delta_ppb), 0)
        return raw

    def gaps_at_array(self, truth_ns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``gaps_at`` for an int64 array: (gap, step gap). With a discipline the slewing is
        its correction at each monotonic reading (exact for instants up to its latest update:
        evaluate an instant only once the servo has been fed every sample before it)."""
        t = np.asarray(truth_ns, dtype=np.int64)
        g = np.zeros(t.shape, dtype=np.int64)
        for f in self.faults:
            if f.kind == "step":
                g = g + np.where(t >= f.at_ns, f.delta_ns, 0)
            elif f.kind == "strobe" and f.period_ns > 0:
                into = t - f.at_ns
                on = (into >= 0) & (into < f.duration_ns) & ((2 * into // f.period_ns) % 2 == 1)
                g = g + np.where(on, f.delta_ns, 0)
        if self.discipline is None:
            return g, g
        slew = self.discipline.correction_at_array(self.monotonic_at_array(t))
        return g + slew, g

    def local_at_array(self, truth_ns: np.ndarray) -> np.ndarray:
        """``local_at`` for an int64 array of true instants, exactly (integer ns)."""
        raw = self.monotonic_at_array(truth_ns)
        if self.gapless:
            return raw
        return raw + self.gaps_at_array(truth_ns)[0]

    def gap_at(self, truth_ns: int) -> int:
        """local − monotonic at a true instant: the sum of steps, strobe and discipline."""
        if self.plain:
            return 0
        return self._gap(truth_ns, self.monotonic_at(truth_ns))

    def gaps_at(self, truth_ns: int) -> tuple[int, int]:
        """(gap, step gap) at a true instant: the gap is local − monotonic; the step gap is the
        part of it not made by the discipline's slewing (steps and strobes only)."""
        if self.plain:
            return 0, 0
        raw = self.monotonic_at(truth_ns)
        g = self._gap(truth_ns, raw)
        if self.discipline is None:
            return g, g
        return g, g - self.discipline.correction_at(raw)

    def _gap(self, t: int, raw: int) -> int:
        g = 0
        for f in self.faults:
            if f.at_ns > t:
                break
            if f.kind == "step":
                g += f.delta_ns
            elif f.kind == "strobe":
                into = t - f.at_ns
                if into < f.duration_ns and f.period_ns > 0 and (2 * into // f.period_ns) % 2:
                    g += f.delta_ns
        if self.discipline is not None:
            g += self.discipline.correction_at(raw)
        return g

    def local_at(self, truth_ns: int) -> int:
        """The node's realtime clock at a true instant."""
        if self.plain:
            t = truth_ns
            return t + self.offset_ns + (t - self.t0_ns) * self.drift_ppb // NS_PER_S
        raw = self.monotonic_at(truth_ns)
        return raw + self._gap(truth_ns, raw)

    def error_at(self, truth_ns: int) -> int:
        """local − true at a true instant, ns."""
        return self.local_at(truth_ns) - truth_ns


def _mul_div_s(dt: np.ndarray, ppb: int) -> np.ndarray:
    """floor(dt·ppb / 1e9) for int64 arrays without overflow: dt = q·1e9 + r, so the result
    is q·ppb + floor(r·ppb / 1e9) exactly (Python's ``dt * ppb // NS_PER_S`` on big ints)."""
    q, r = np.divmod(dt, NS_PER_S)
    return q * ppb + (r * ppb) // NS_PER_S


class Timekeeper(Protocol):
    """What a NodeClock needs from an oscillator (emulated or replayed)."""

    def local_at(self, truth_ns: int) -> int: ...

    def monotonic_at(self, truth_ns: int) -> int: ...

    def gap_at(self, truth_ns: int) -> int: ...

    def gaps_at(self, truth_ns: int) -> tuple[int, int]: ...

    gapless: bool  # True when local == monotonic at every instant (no need to read the gap)


@dataclass(slots=True)
class NodeClock:
    """A node's view of time: one true-time read mapped through its oscillator.

    Besides the realtime reading it exposes the monotonic reading and the gap
    ``local − monotonic`` (what sources use to detect steps of the realtime clock).
    """

    oscillator: Timekeeper = field(default_factory=Oscillator)
    host: TimeSource = HOST_CLOCK

    def now(self) -> tuple[int, int]:
        """Return (truth_ns, local_ns) from one read of the host clock."""
        t = self.host.now_ns()
        return t, self.oscillator.local_at(t)

    def now3(self) -> tuple[int, int, int]:
        """Return (truth_ns, local_ns, monotonic_ns) from one read of the host clock."""
        t = self.host.now_ns()
        osc = self.oscillator
        return t, osc.local_at(t), osc.monotonic_at(t)

    def local_ns(self) -> int:
        return self.oscillator.local_at(self.host.now_ns())

    def monotonic_ns(self) -> int:
        """The node's monotonic reading: never steps (Linux CLOCK_MONOTONIC_RAW analogue)."""
        return self.oscillator.monotonic_at(self.host.now_ns())

    def gap_ns(self) -> int:
        """local − monotonic now; constant unless the realtime clock is stepped or slewed."""
        return self.oscillator.gap_at(self.host.now_ns())

    def gaps_ns(self) -> tuple[int, int]:
        """(gap, step gap) now. The step gap leaves out the discipline's own slewing, which a
        real host can read back from its kernel (adjtimex); it changes only on steps."""
        return self.oscillator.gaps_at(self.host.now_ns())
