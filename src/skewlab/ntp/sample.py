"""``NtpSample``: one valid NTP exchange, as a plain value (integer ns).

A leaf module: the clock sources, the sync state and the discipline take samples without
importing the client (which reads a node clock, and so would import the clocks back).
Produced by ``skewlab.ntp.client.compute_sample``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class NtpSample:
    """One valid client/server exchange, all in integer ns."""

    server: str
    t1_ns: int  # client transmit, local clock
    t2_ns: int  # server receive, reference clock
    t3_ns: int  # server transmit, reference clock
    t4_ns: int  # client receive, local clock
    offset_ns: int  # θ, reference − local
    delay_ns: int  # δ, round trip minus server hold time
    root_distance_ns: int  # λ, half-width of the interval that must hold the true offset
    root_delay_ns: int  # the server's claimed round trip to its primary reference
    root_dispersion_ns: int  # the server's claimed error bound to its primary reference
    stratum: int
    leap: int
    precision: int  # server precision, log2 s
    truth_t1_ns: int | None = None  # true time at T1 (emulated nodes only)
    truth_t4_ns: int | None = None  # true time at T4 (emulated nodes only)

    @property
    def local_ns(self) -> int:
        """The local instant the sample describes (T4)."""
        return self.t4_ns

    @property
    def earliest_offset_ns(self) -> int:
        """θ − λ: the lowest true offset consistent with this sample."""
        return self.offset_ns - self.root_distance_ns

    @property
    def latest_offset_ns(self) -> int:
        """θ + λ: the highest true offset consistent with this sample."""
        return self.offset_ns + self.root_distance_ns
