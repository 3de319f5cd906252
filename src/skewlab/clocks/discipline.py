"""A clock discipline: a servo that slews a node's realtime clock toward NTP, like a host
running an NTP daemon (rate-limited slew, frequency integrator). Profiles: ``free`` (no
servo) and ``disciplined`` (a healthy host).

The correction is a continuous piecewise-linear function of the node's monotonic (raw)
reading m:  c(m) = c_k + r_k·(m − m_k) for the latest update k with m_k ≤ m. Each NTP sample
starts a new segment at the monotonic instant it is applied, so the realtime clock never steps.

Servo (a type-II loop, one update per sample, θ = reference − local in ns, dt in s):
  f ← f + θ·dt / (4·τ²)          frequency integrator (ppb: 1 ns/s = 1 ppb)
  r = clamp(θ/τ + f, ±max_slew)   slew rate applied until the next sample
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field

from skewlab.clocks.sync import SyncState
from skewlab.ntp.sample import NtpSample

NS_PER_S = 1_000_000_000


@dataclass(slots=True)
class Discipline:
    """Slews the realtime clock toward NTP; ``correction_at(mono)`` is added to the clock."""

    time_constant_s: float = 64.0  # τ: how many seconds an offset takes to be slewed away
    max_slew_ppm: float = 500.0  # slew rate limit (Linux adjtime's 500 ppm)
    freq_ppb: float = 0.0  # frequency integrator, ppb
    _m: list[int] = field(default_factory=lambda: [-(1 << 62)])  # segment starts (monotonic)
    _c: list[float] = field(default_factory=lambda: [0.0])  # correction at segment start, ns
    _r: list[float] = field(default_factory=lambda: [0.0])  # slew rate on the segment, ppb
    updates: int = 0

    @property
    def max_slew_ppb(self) -> float:
        return self.max_slew_ppm * 1000.0

    def correction_at(self, mono_ns: int) -> int:
        """Correction (ns) added to the monotonic reading to give the realtime clock."""
        k = len(self._r) - 1  # _r is appended last: segment k is complete (poller thread)
        if mono_ns < self._m[k]:
            k = bisect_right(self._m, mono_ns) - 1
            if k < 0:
                return 0
        if k == 0:
            return 0
        return round(self._c[k] + self._r[k] * (mono_ns - self._m[k]) / NS_PER_S)

    def correction_at_array(self, mono_ns):  # type: ignore[no-untyped-def]
        """``correction_at`` for an int64 array of monotonic readings, bit for bit (the same
        float operations in the same order; numpy's rint rounds half to even like ``round``).
        Exact for any instant up to the latest update: segments are only ever appended, each
        starting at the monotonic instant it was applied, so later updates never change the
        correction of an earlier instant."""
        import numpy as np

        m = np.asarray(mono_ns, dtype=np.int64)
        k = np.searchsorted(np.asarray(self._m, dtype=np.int64), m, side="right") - 1
        kk = np.maximum(k, 0)
        c = np.asarray(self._c, dtype=np.float64)[kk]
        r = np.asarray(self._r, dtype=np.float64)[kk]
        dt = (m - np.asarray(self._m, dtype=np.int64)[kk]).astype(np.float64)
        out = np.rint(c + r * dt / NS_PER_S).astype(np.int64)
        return np.where(k >= 1, out, 0)

    def slew_ppb(self) -> float:
        """The slew rate applied now (ppb)."""
        return self._r[-1]

    def update(self, theta_ns: int, mono_now_ns: int) -> None:
        """Apply one NTP offset measurement (θ = reference − local) at a monotonic instant."""
        tau = self.time_constant_s
        dt = 0.0 if self.updates == 0 else (mono_now_ns - self._m[-1]) / NS_PER_S
        self.freq_ppb += theta_ns * dt / (4.0 * tau * tau)
        lim = self.max_slew_ppb
        r = max(-lim, min(lim, theta_ns / tau + self.freq_ppb))
        c_now = float(self.correction_at(mono_now_ns))
        self._m.append(mono_now_ns)
        self._c.append(c_now)
        self._r.append(r)
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
