"""Emulated node clocks: a node reads true time only through its own oscillator.

  raw(t)   = t + offset0 + drift·(t − t0) + wander(t) + Σ frequency steps and ramps
             + Σ sinusoids(t) + replay(t)                                      (monotonic)
  local(t) = raw(t) + Σ steps + strobe(t) + discipline(raw(t))                 (realtime)

All integer ns; drift in parts per billion. Every frequency term's phase is the exact integral
of its frequency, rounded to ns; the scalar methods and their ``*_array`` forms (the
simulator's) do the same float operations in the same order, so they agree bit for bit (numpy
is given no transcendental function: a sinusoid's sin/cos are tabulated with ``math``).

``raw`` is the node's *monotonic* reading: it never steps and is not slewed by a discipline
(like Linux CLOCK_MONOTONIC_RAW). ``local`` is the node's system (realtime) clock. Their
difference, the *gap* ``local − monotonic``, changes only when the realtime clock is stepped,
strobed or slewed: sources use it to detect steps.

Sign convention: ``offset_ns`` > 0 means the node's clock is *ahead* of true time. The NTP
offset θ (reference − local) of such a node is therefore negative.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from dataclasses import dataclass, field
from itertools import pairwise
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

    __slots__ = ("_arrays", "_freq", "_phase", "_rng", "_sd", "step_ns", "t0_ns")
    AHEAD = 3600  # grid cells generated beyond the one asked for (same path: grid order)

    def __init__(self, sigma_ppb_per_sqrt_s: float, seed: int, t0_ns: int, step_s: float = 1.0):
        self.step_ns = max(1, round(step_s * NS_PER_S))
        self.t0_ns = t0_ns
        self._sd = sigma_ppb_per_sqrt_s * math.sqrt(step_s)
        self._rng = random.Random(seed)
        self._freq: list[float] = [0.0]  # ppb during grid cell k
        self._phase: list[float] = [0.0]  # ns at the start of grid cell k
        self._arrays: tuple[np.ndarray, np.ndarray] | None = None  # the lists, for numpy

    def _extend(self, k: int) -> None:
        freq, phase, step, rng, sd = self._freq, self._phase, self.step_ns, self._rng, self._sd
        k += self.AHEAD  # generate ahead, so the numpy copies are rebuilt rarely
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
        arrays = self._arrays
        if arrays is None or len(arrays[0]) != len(self._freq):
            arrays = (np.asarray(self._freq, dtype=np.float64),
                      np.asarray(self._phase, dtype=np.float64))  # fmt: skip
            self._arrays = arrays
        freq = arrays[0][k]
        phase = arrays[1][k]
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


# Taylor coefficients of cos and sin about 0, for |x| ≤ 2π/_GRID (x⁸/8! and x⁹/9! are below
# double precision there): only + and ×, which Python and numpy round identically.
_GRID = 1024  # table points per period of a sinusoid
_C4, _C6 = 1.0 / 24.0, 1.0 / 720.0
_S3, _S5, _S7 = 1.0 / 6.0, 1.0 / 120.0, 1.0 / 5040.0


class Sinusoid:
    """A periodic frequency term (diurnal or thermal cycle): f(t) = A·sin(ω(t − t0) + φ) ppb
    with ω = 2π/P; its phase is the exact integral from t0,
    A/ω·(cos φ − cos(ω(t − t0) + φ)) ns (0 at t0, so the node's offset holds there).

    The angle is reduced exactly in integers to a point k of a 1024-point table per period
    (cos and sin there computed once with ``math``) plus a remainder x < 2π/1024, whose cos and
    sin come from their Taylor polynomials: cos(θ_k + x) = cos θ_k·cos x − sin θ_k·sin x."""

    __slots__ = ("_amp_ns", "_cos", "_cos0", "_cos_a", "_rad_per", "_sin", "_sin_a",
                 "amplitude_ppb", "period_ns", "phase_rad", "t0_ns")  # fmt: skip

    def __init__(self, amplitude_ppb: float, period_ns: int, phase_rad: float, t0_ns: int):
        if period_ns < 1 or period_ns * _GRID >= 2**62:
            raise ValueError(f"sinusoid period {period_ns} ns out of range")
        self.amplitude_ppb = amplitude_ppb
        self.period_ns = period_ns
        self.phase_rad = phase_rad
        self.t0_ns = t0_ns
        angles = [2.0 * math.pi * k / _GRID + phase_rad for k in range(_GRID)]
        self._cos = [math.cos(a) for a in angles]
        self._sin = [math.sin(a) for a in angles]
        self._cos_a = np.asarray(self._cos, dtype=np.float64)  # the same values, for arrays
        self._sin_a = np.asarray(self._sin, dtype=np.float64)
        self._cos0 = self._cos[0]
        self._rad_per = 2.0 * math.pi / (_GRID * period_ns)  # radians per unit of remainder
        self._amp_ns = amplitude_ppb * period_ns / (2.0 * math.pi * NS_PER_S)  # A/ω, ns

    def _angle(self, truth_ns: int) -> tuple[float, float]:
        """(cos, sin) of ω(t − t0) + φ."""
        m = (truth_ns - self.t0_ns) % self.period_ns
        k = m * _GRID // self.period_ns
        x = float(m * _GRID - k * self.period_ns) * self._rad_per
        x2 = x * x
        cx = 1.0 - x2 * (0.5 - x2 * (_C4 - x2 * _C6))
        sx = x * (1.0 - x2 * (_S3 - x2 * (_S5 - x2 * _S7)))
        ck, sk = self._cos[k], self._sin[k]
        return ck * cx - sk * sx, sk * cx + ck * sx

    def _angle_array(self, truth_ns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        m = (truth_ns - self.t0_ns) % self.period_ns
        k = m * _GRID // self.period_ns
        x = (m * _GRID - k * self.period_ns).astype(np.float64) * self._rad_per
        x2 = x * x
        cx = 1.0 - x2 * (0.5 - x2 * (_C4 - x2 * _C6))
        sx = x * (1.0 - x2 * (_S3 - x2 * (_S5 - x2 * _S7)))
        ck, sk = self._cos_a[k], self._sin_a[k]
        return ck * cx - sk * sx, sk * cx + ck * sx

    def phase_ns(self, truth_ns: int) -> int:
        """The term's phase at a true instant, rounded to ns."""
        return round(self._amp_ns * (self._cos0 - self._angle(truth_ns)[0]))

    def phase_ns_array(self, truth_ns: np.ndarray) -> np.ndarray:
        """``phase_ns`` for an int64 array (the same float operations; rint = round)."""
        c = self._angle_array(truth_ns)[0]
        return np.rint(self._amp_ns * (self._cos0 - c)).astype(np.int64)

    def freq_ppb(self, truth_ns: int) -> float:
        """The term's frequency (ppb) at a true instant."""
        return self.amplitude_ppb * self._angle(truth_ns)[1]


class Replay:
    """A recorded error series added to the phase: local − true follows the points (recording
    time, error), both integer ns, linearly interpolated between points and held before the
    first and after the last. Recording time ``start_ns`` falls on true time ``t0_ns``."""

    __slots__ = ("_dt", "_offs", "_times", "offsets_ns", "start_ns", "t0_ns", "times_ns")

    def __init__(self, times_ns: list[int], offsets_ns: list[int], t0_ns: int, start_ns: int):
        if not times_ns or len(times_ns) != len(offsets_ns):
            raise ValueError("a replay needs at least one (time, offset) point")
        if any(b <= a for a, b in pairwise(times_ns)):
            raise ValueError("replay times must be strictly increasing")
        self.times_ns = list(times_ns)
        self.offsets_ns = list(offsets_ns)
        self.t0_ns = t0_ns
        self.start_ns = start_ns
        self._times = np.asarray(self.times_ns, dtype=np.int64)
        self._offs = np.asarray(self.offsets_ns, dtype=np.int64)
        self._dt = start_ns - t0_ns  # recording time − true time

    def offset_ns(self, truth_ns: int) -> int:
        """The recorded error at a true instant (interpolated, held at the ends)."""
        e = truth_ns + self._dt
        ts, os_ = self.times_ns, self.offsets_ns
        k = bisect_right(ts, e)
        if k == 0:
            return os_[0]
        if k == len(ts):
            return os_[-1]
        t_a, o_a = ts[k - 1], os_[k - 1]
        return o_a + round(float(os_[k] - o_a) * float(e - t_a) / float(ts[k] - t_a))

    def offset_ns_array(self, truth_ns: np.ndarray) -> np.ndarray:
        """``offset_ns`` for an int64 array (the same float operations; rint = round)."""
        e = truth_ns + self._dt
        ts, os_ = self._times, self._offs
        n = len(ts)
        if n == 1:
            return np.full(e.shape, os_[0], dtype=np.int64)
        k = np.searchsorted(ts, e, side="right")
        j = np.clip(k, 1, n - 1)
        t_a, o_a = ts[j - 1], os_[j - 1]
        frac = (os_[j] - o_a).astype(np.float64) * (e - t_a).astype(np.float64)
        inner = o_a + np.rint(frac / (ts[j] - t_a).astype(np.float64)).astype(np.int64)
        return np.where(k == 0, os_[0], np.where(k == n, os_[-1], inner))

    def freq_ppb(self, truth_ns: int) -> float:
        """The slope of the recorded error at a true instant, ppb (0 outside the record; at a
        point, the slope of the segment it starts)."""
        e = truth_ns + self._dt
        ts, os_ = self.times_ns, self.offsets_ns
        k = bisect_right(ts, e)
        if k == 0 or k == len(ts):
            return 0.0
        return (os_[k] - os_[k - 1]) * 1e9 / (ts[k] - ts[k - 1])


def _ramp_phase(f: ClockFault, u: int) -> int:
    """Phase (ns) of a frequency change ramped linearly over ``f.ramp_ns``, ``u`` ns after it
    starts: Δf·u²/(2R) during the ramp, Δf·(u − R/2) after it (floored, as a step's Δf·u)."""
    if u < f.ramp_ns:
        return math.floor(float(f.delta_ppb) * float(u) * float(u) / (2.0 * f.ramp_ns * NS_PER_S))
    return (2 * u - f.ramp_ns) * f.delta_ppb // (2 * NS_PER_S)


def _ramp_phase_array(f: ClockFault, u: np.ndarray) -> np.ndarray:
    uf = np.clip(u, 0, f.ramp_ns).astype(np.float64)  # the ramp's own instants unchanged
    during = np.floor(float(f.delta_ppb) * uf * uf / (2.0 * f.ramp_ns * NS_PER_S))
    after = _mul_div(2 * u - f.ramp_ns, f.delta_ppb, 2 * NS_PER_S)
    return np.where(u < f.ramp_ns, during.astype(np.int64), after)


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
    sinusoids: tuple[Sinusoid, ...] = ()  # periodic frequency terms (diurnal, thermal)
    replay: Replay | None = None  # a recorded error series added to the phase
    _wander: Wander | None = field(default=None, init=False, repr=False)
    plain: bool = field(default=True, init=False)  # True: offset and drift only
    gapless: bool = field(default=True, init=False)  # True: no steps/strobes/discipline: gap 0
    # True: the monotonic reading is offset and drift only (no wander, sinusoid, replay, fault)
    mono_plain: bool = field(default=True, init=False)
    # the latest non-plain evaluation (truth, servo updates then, step gap, slewing): a worker
    # reads local_at(t) and then each source's gaps_at(t) for the same receipt; one tuple,
    # replaced atomically
    _last: tuple[int | None, int, int, int] = field(default=(None, 0, 0, 0), init=False,
                                                    repr=False)  # fmt: skip

    def __post_init__(self) -> None:
        self.faults = tuple(sorted(self.faults, key=lambda f: f.at_ns))
        if self.wander_ppb:
            self._wander = Wander(self.wander_ppb, self.seed, self.t0_ns)
        self.attach(self.discipline)

    def attach(self, discipline: Servo | None) -> None:
        """Attach (or remove) a discipline servo after construction."""
        self.discipline = discipline
        self.plain = (self._wander is None and not self.faults and discipline is None
                      and not self.sinusoids and self.replay is None)  # fmt: skip
        self.gapless = discipline is None and all(f.kind == "freq" for f in self.faults)
        self.mono_plain = (self._wander is None and not self.faults and not self.sinusoids
                           and self.replay is None)  # fmt: skip

    def monotonic_at(self, truth_ns: int) -> int:
        """The monotonic reading (never steps, never slewed) at a true instant."""
        t = truth_ns
        raw = t + self.offset_ns + (t - self.t0_ns) * self.drift_ppb // NS_PER_S
        if self.mono_plain:
            return raw
        if self._wander is not None:
            raw += round(self._wander.phase_ns(t))
        for s in self.sinusoids:
            raw += s.phase_ns(t)
        if self.replay is not None:
            raw += self.replay.offset_ns(t)
        for f in self.faults:
            if f.at_ns > t:
                break
            if f.kind == "freq":
                if f.ramp_ns > 0:
                    raw += _ramp_phase(f, t - f.at_ns)
                else:
                    raw += (t - f.at_ns) * f.delta_ppb // NS_PER_S
        return raw

    def monotonic_at_array(self, truth_ns: np.ndarray) -> np.ndarray:
        """``monotonic_at`` for an int64 array of true instants, exactly (integer ns)."""
        t = np.asarray(truth_ns, dtype=np.int64)
        raw = t + self.offset_ns + _mul_div_s(t - self.t0_ns, self.drift_ppb)
        if self._wander is not None:
            raw = raw + self._wander.phase_ns_array(t)
        for s in self.sinusoids:
            raw = raw + s.phase_ns_array(t)
        if self.replay is not None:
            raw = raw + self.replay.offset_ns_array(t)
        for f in self.faults:
            if f.kind == "freq":
                u = t - f.at_ns
                phase = _ramp_phase_array(f, u) if f.ramp_ns > 0 else _mul_div_s(u, f.delta_ppb)
                raw = raw + np.where(u >= 0, phase, 0)
        return raw

    def freq_ppb_at(self, truth_ns: int) -> float:
        """The oscillator's frequency error (ppb, positive: runs fast) at a true instant: drift,
        wander, frequency steps and ramps, sinusoids and the replay's slope (not the
        discipline's slewing, which moves only the realtime clock)."""
        t = truth_ns
        f_ppb = float(self.drift_ppb)
        if self._wander is not None:
            f_ppb += self._wander.freq_ppb(t)
        for s in self.sinusoids:
            f_ppb += s.freq_ppb(t)
        if self.replay is not None:
            f_ppb += self.replay.freq_ppb(t)
        for f in self.faults:
            if f.at_ns > t:
                break
            if f.kind == "freq":
                u = t - f.at_ns
                ramp = min(1.0, u / f.ramp_ns) if f.ramp_ns > 0 else 1.0
                f_ppb += f.delta_ppb * ramp
        return f_ppb

    def gaps_at_array(self, truth_ns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``gaps_at`` for an int64 array: (gap, step gap). With a discipline the slewing is
        its correction at each monotonic reading (exact for instants up to its latest update:
        evaluate an instant only once the servo has been fed every sample before it)."""
        return self.local_gaps_at_array(truth_ns)[1:]

    def local_at_array(self, truth_ns: np.ndarray) -> np.ndarray:
        """``local_at`` for an int64 array of true instants, exactly (integer ns)."""
        return self.local_gaps_at_array(truth_ns)[0]

    def local_gaps_at_array(
        self, truth_ns: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(local, gap, step gap) for an int64 array of true instants, the monotonic reading
        computed once: what a batch of receipts needs (``local_at`` and ``gaps_at`` of each)."""
        t = np.asarray(truth_ns, dtype=np.int64)
        raw = self.monotonic_at_array(t)
        if self.gapless:
            z = np.zeros(t.shape, dtype=np.int64)
            return raw, z, z
        g = np.zeros(t.shape, dtype=np.int64)
        for f in self.faults:
            if f.kind == "step":
                g = g + np.where(t >= f.at_ns, f.delta_ns, 0)
            elif f.kind == "strobe" and f.period_ns > 0:
                into = t - f.at_ns
                on = (into >= 0) & (into < f.duration_ns) & ((2 * into // f.period_ns) % 2 == 1)
                g = g + np.where(on, f.delta_ns, 0)
        if self.discipline is None:
            return raw + g, g, g
        gap = g + self.discipline.correction_at_array(raw)
        return raw + gap, gap, g

    def gap_at(self, truth_ns: int) -> int:
        """local − monotonic at a true instant: the sum of steps, strobe and discipline."""
        if self.plain:
            return 0
        steps, slew = self._split(truth_ns)
        return steps + slew

    def gaps_at(self, truth_ns: int) -> tuple[int, int]:
        """(gap, step gap) at a true instant: the gap is local − monotonic; the step gap is the
        part of it not made by the discipline's slewing (steps and strobes only)."""
        if self.plain:
            return 0, 0
        steps, slew = self._split(truth_ns)
        return steps + slew, steps

    def _split(self, t: int) -> tuple[int, int]:
        """(steps and strobe, discipline's slewing) at a true instant; the latest instant's
        values are reused (a receipt's local_at and its sources' gaps_at ask for the same t)
        unless the servo was updated since."""
        last = self._last
        if last[0] == t and last[1] == self._updates():
            return last[2], last[3]
        return self._eval(t, self.monotonic_at(t))[1:]

    def _eval(self, t: int, raw: int) -> tuple[int, int, int]:
        """(raw, steps and strobe, slewing) at a true instant whose monotonic reading is raw;
        remembered as the latest evaluation."""
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
        disc = self.discipline
        n = self._updates()
        slew = 0 if disc is None else disc.correction_at(raw)
        self._last = (t, n, g, slew)
        return raw, g, slew

    def _updates(self) -> int:
        disc = self.discipline
        return 0 if disc is None else getattr(disc, "updates", 0)

    def _gap(self, t: int, raw: int) -> int:
        _raw, steps, slew = self._eval(t, raw)
        return steps + slew

    def local_at(self, truth_ns: int) -> int:
        """The node's realtime clock at a true instant."""
        t = truth_ns
        if self.plain:
            return t + self.offset_ns + (t - self.t0_ns) * self.drift_ppb // NS_PER_S
        disc = self.discipline
        if self.mono_plain and disc is not None:  # a disciplined host's usual clock: inlined
            raw = t + self.offset_ns + (t - self.t0_ns) * self.drift_ppb // NS_PER_S
            n = getattr(disc, "updates", 0)
            slew = disc.correction_at(raw)
            self._last = (t, n, 0, slew)
            return raw + slew
        raw, steps, slew = self._eval(t, self.monotonic_at(t))
        return raw + steps + slew

    def error_at(self, truth_ns: int) -> int:
        """local − true at a true instant, ns."""
        return self.local_at(truth_ns) - truth_ns


def _mul_div(x: np.ndarray, m: int, d: int) -> np.ndarray:
    """floor(x·m / d) for int64 arrays without overflow (x = q·d + r: q·m + floor(r·m / d)),
    exactly Python's ``x * m // d`` on big ints (|m|·d < 2⁶³)."""
    q, r = np.divmod(x, d)
    return q * m + (r * m) // d


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
