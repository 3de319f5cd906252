"""A clock discipline: a servo that slews a node's realtime clock toward NTP the way an NTP
daemon on a healthy host does (chronyd, ntpd). Profiles: ``free`` (no servo) and
``disciplined``.

The correction added to the monotonic (raw) reading m is a continuous function made of one
segment per NTP update k, starting at the monotonic instant m_k the update was applied:

  c(m) = c_k + f_k·(m − m_k)/1e9 + p_k·min(m − m_k, T_k)/T_k            (ns; f in ppb)

- **Phase**: update k slews its whole measured offset p_k = θ_k (θ = reference − local) away
  over T_k = max(phase_time_s, |θ_k| / max_slew) and then *stops*: the phase term
  never runs past the offset it was asked to correct, so an outage leaves only the frequency
  term (no runaway slew). A new update replaces the part of the previous correction not yet
  applied (its θ measures it again), as chronyd does.
- **Frequency**: f_k is the frequency correction (ppb), a persistent rate. Each update compares
  the offset with what the pending phase correction still owed: the innovation
  ι_k = θ_k − p_{k−1}·(1 − min(Δ, T_{k−1})/T_{k−1}) (Δ = m_k − m_{k−1}) is the phase the clock
  gained from its residual frequency error over Δ, so f_k = clamp(f_{k−1} + g·ι_k/Δ, ±max_freq)
  with gain g = Δ/(Δ + freq_time_s): a frequency-locked loop that averages the measurement
  noise over about freq_time_s and converges geometrically (factor 1 − g per update) to minus
  the oscillator's frequency error. Long polls (chrony: 64–1024 s) give gains near 1, since
  their ι/Δ is a precise frequency measurement; 1 s polls average over ~256 updates. An offset
  beyond ``step_threshold_ms`` (ntpd's 128 ms) says the clock was stepped or mis-set, not that
  its frequency is off: it is slewed as phase and leaves the frequency alone.
- The phase term's rate never exceeds ``max_slew_ppm`` (Linux adjtime's 500 ppm), the frequency
  term never exceeds ``max_freq_ppm`` (chronyd's maxdrift, 500 ppm).

During an outage the clock therefore keeps f_k: its error grows by the remaining frequency
error × time, nothing more. ``remaining_at`` is the part of the latest offset not yet slewed
away: what ``chronyc tracking`` reports as the system time's offset, and what ClockBound reads.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field

from skewlab.clocks.sync import SyncState
from skewlab.ntp.sample import NtpSample

NS_PER_S = 1_000_000_000
_START = -(1 << 62)


@dataclass(slots=True)
class Discipline:
    """Slews the realtime clock toward NTP; ``correction_at(mono)`` is added to the clock."""

    phase_time_s: float = 16.0  # an offset is slewed away over (at least) this long, then stops
    freq_time_s: float = 256.0  # frequency loop: gain Δ/(Δ + freq_time_s) per update
    max_slew_ppm: float = 500.0  # phase slew rate limit (Linux adjtime's 500 ppm)
    max_freq_ppm: float = 500.0  # frequency correction limit (chronyd's maxdrift default)
    step_threshold_ms: float = 128.0  # larger offsets are phase only (ntpd's step threshold)
    freq_ppb: float = 0.0  # frequency correction now, ppb
    _m: list[int] = field(default_factory=lambda: [_START])  # segment starts (monotonic)
    _c: list[float] = field(default_factory=lambda: [0.0])  # correction at segment start, ns
    _f: list[float] = field(default_factory=lambda: [0.0])  # frequency term on the segment, ppb
    _p: list[float] = field(default_factory=lambda: [0.0])  # phase to slew on the segment, ns
    _t: list[float] = field(default_factory=lambda: [1.0])  # its duration T_k, ns (> 0)
    updates: int = 0
    max_rate_ppb: float = 0.0  # the largest |rate| the correction has had (all segments)
    # the latest segment (m, c, f, p, T) in one tuple: the hot path's one attribute read
    _seg: tuple[int, float, float, float, float] = (_START, 0.0, 0.0, 0.0, 1.0)

    @property
    def max_slew_ppb(self) -> float:
        """The largest rate (ppb) at which the correction ever changes: phase plus frequency."""
        return (self.max_slew_ppm + self.max_freq_ppm) * 1000.0

    def correction_at(self, mono_ns: int) -> int:
        """Correction (ns) added to the monotonic reading to give the realtime clock."""
        m, c, f, p, t = self._seg  # the latest segment (replaced whole by update/settle)
        if mono_ns >= m:
            dt = mono_ns - m
            return round(c + f * dt / NS_PER_S + p * (dt if dt < t else t) / t)
        k = len(self._t) - 1  # _t is appended last: segment k is complete (poller thread)
        if mono_ns < self._m[k]:
            k = max(0, bisect_right(self._m, mono_ns) - 1)
        dt = mono_ns - self._m[k]
        t = self._t[k]
        return round(self._c[k] + self._f[k] * dt / NS_PER_S + self._p[k] * min(dt, t) / t)

    def correction_at_array(self, mono_ns):  # type: ignore[no-untyped-def]
        """``correction_at`` for an int64 array of monotonic readings, bit for bit (the same
        float operations in the same order; numpy's rint rounds half to even like ``round``).
        Exact for any instant up to the latest update: segments are only ever appended, each
        starting at the monotonic instant it was applied, so later updates never change the
        correction of an earlier instant. Safe while another thread updates: ``_t`` is
        appended last, so its length counts the complete segments."""
        import numpy as np

        n = len(self._t)
        m = np.asarray(mono_ns, dtype=np.int64)
        starts = np.asarray(self._m[:n], dtype=np.int64)
        k = np.searchsorted(starts, m, side="right") - 1
        kk = np.maximum(k, 0)
        c = np.asarray(self._c[:n], dtype=np.float64)[kk]
        f = np.asarray(self._f[:n], dtype=np.float64)[kk]
        p = np.asarray(self._p[:n], dtype=np.float64)[kk]
        t = np.asarray(self._t[:n], dtype=np.float64)[kk]
        dt = (m - starts[kk]).astype(np.float64)
        return np.rint(c + f * dt / NS_PER_S + p * np.minimum(dt, t) / t).astype(np.int64)

    def settle(self, mono_ns: int, correction_ns: int) -> None:
        """Start converged: before its first update the servo already holds ``correction_ns``
        at monotonic ``mono_ns`` and applies its frequency (a host whose daemon has run: its
        clock was set and its drift file restored). Only before any update."""
        if self.updates:
            raise RuntimeError("settle() is for a servo that has not been updated yet")
        self._m[0], self._c[0], self._f[0] = mono_ns, float(correction_ns), self.freq_ppb
        self._seg = (mono_ns, float(correction_ns), self.freq_ppb, 0.0, 1.0)
        self.max_rate_ppb = max(self.max_rate_ppb, abs(self.freq_ppb))

    def remaining_at(self, mono_ns: int) -> int:
        """The part of the latest measured offset not yet slewed away at a monotonic instant
        (ns, signed like θ); 0 before the first update."""
        k = len(self._t) - 1
        if k == 0:
            return 0
        dt = max(0, mono_ns - self._m[k])
        t = self._t[k]
        return round(self._p[k] - self._p[k] * min(dt, t) / t)

    def slew_ppb(self) -> float:
        """The slew rate applied at the latest update (ppb): frequency plus phase term."""
        return self._f[-1] + self._p[-1] / self._t[-1] * NS_PER_S

    def segment(self) -> tuple[int, int, int, int] | None:
        """The latest update's segment as integers: (monotonic start m_k, correction then c_k,
        phase correction p_k, the phase's duration on the *realtime* clock, rounded up), all
        ns; None before any update. While the phase runs the realtime clock advances at
        1 + f_k + p_k/T_k per monotonic ns, so the phase lasts T_k·(1 + f_k) + p_k realtime ns
        and what remains is linear in realtime elapsed: p_k·(1 − elapsed/that)."""
        if not self.updates:
            return None
        t, p = self._t[-1], self._p[-1]
        t_real = t + t * self._f[-1] / NS_PER_S + p
        return self._m[-1], round(self._c[-1]), round(p), -int(-t_real // 1)

    def update(self, theta_ns: int, mono_now_ns: int) -> None:
        """Apply one NTP offset measurement (θ = reference − local) at a monotonic instant."""
        f = self.freq_ppb
        if self.updates and abs(theta_ns) <= self.step_threshold_ms * 1e6:
            dt = mono_now_ns - self._m[-1]
            if dt > 0:
                t_prev = self._t[-1]
                owed = self._p[-1] - self._p[-1] * min(dt, t_prev) / t_prev
                d_s = dt / NS_PER_S
                gain = d_s / (d_s + self.freq_time_s)
                fmax = self.max_freq_ppm * 1000.0
                f = max(-fmax, min(fmax, f + gain * (theta_ns - owed) / d_s))
        room = self.max_slew_ppm * 1000.0  # ppb
        t_ns = max(self.phase_time_s * NS_PER_S, abs(theta_ns) / room * NS_PER_S, 1.0)
        c_now = float(self.correction_at(mono_now_ns))
        self.freq_ppb = f
        self._m.append(mono_now_ns)
        self._c.append(c_now)
        self._f.append(f)
        self._p.append(float(theta_ns))
        self._t.append(t_ns)
        self._seg = (mono_now_ns, c_now, f, float(theta_ns), t_ns)
        rate = abs(f) + abs(theta_ns) / t_ns * NS_PER_S  # bounds |f + p/T|
        self.max_rate_ppb = max(self.max_rate_ppb, rate)
        self.updates += 1

    def follow(self, state: SyncState) -> None:
        """Subscribe to a node's samples; each new sample updates the servo."""

        def _on(sample: NtpSample) -> None:
            # The new slew starts now (not at T4) so that the clock stays causal.
            clock = state.clock
            if clock is not None:
                mono = clock.monotonic_ns()
            elif state.latest_mono_ns is not None:
                mono = state.latest_mono_ns
            else:
                mono = sample.t4_ns
            self.update(sample.offset_ns, mono)

        state.subscribe(_on)


PROFILES = ("free", "disciplined")


def make_discipline(profile: str, **params: float) -> Discipline | None:
    """A servo for a named profile: ``free`` (None) or ``disciplined``."""
    if profile == "free":
        return None
    if profile == "disciplined":
        return Discipline(**params)
    raise ValueError(f"unknown clock profile {profile!r}; known: {', '.join(PROFILES)}")
