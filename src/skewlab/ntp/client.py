"""RFC 5905 client: one exchange = four timestamps, offset, delay, root distance.

T1 and T4 are read from the node's (local) clock, T2 and T3 come from the server.
  offset θ = ((T2 − T1) + (T3 − T4)) / 2      reference − local; positive: local is behind
  delay  δ = (T4 − T1) − (T3 − T2)
  root distance λ = δ/2 + root_delay/2 + root_dispersion + server precision + client precision
The true offset lies in [θ − λ, θ + λ] whatever the path asymmetry.
"""

from __future__ import annotations

import secrets
import socket
import time
from collections import Counter
from dataclasses import dataclass
from typing import Protocol

from skewlab.ntp.packet import (
    LEAP_UNSYNC,
    MODE_CLIENT,
    MODE_SERVER,
    NtpDecodeError,
    NtpPacket,
    ns_to_ntp64,
    ntp64_to_ns,
    precision_ns,
)

CLIENT_PRECISION = -20  # ~1 µs: what a Python process can resolve when reading the clock


class DualClock(Protocol):
    def now(self) -> tuple[int, int]:  # (truth_ns, local_ns)
        ...


class NtpError(Exception):
    """An exchange that produced no valid sample; ``reason`` is a short tag."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


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
    root_delay_ns: int
    root_dispersion_ns: int
    stratum: int
    leap: int
    precision: int
    truth_t1_ns: int | None = None  # true time at T1 (emulated nodes only)
    truth_t4_ns: int | None = None  # true time at T4 (emulated nodes only)

    @property
    def local_ns(self) -> int:
        """The local instant the sample describes (T4)."""
        return self.t4_ns


def compute_sample(
    server: str,
    t1: int,
    t2: int,
    t3: int,
    t4: int,
    *,
    root_delay_ns: int = 0,
    root_dispersion_ns: int = 0,
    stratum: int = 1,
    leap: int = 0,
    precision: int = CLIENT_PRECISION,
    truth_t1_ns: int | None = None,
    truth_t4_ns: int | None = None,
) -> NtpSample:
    """The RFC 5905 on-wire arithmetic; the one home of the offset/delay/distance formulas."""
    offset = ((t2 - t1) + (t3 - t4)) // 2
    delay = (t4 - t1) - (t3 - t2)
    if delay < 0:
        raise NtpError("negative_delay", f"{delay} ns")
    distance = (
        (delay + 1) // 2
        + (root_delay_ns + 1) // 2
        + root_dispersion_ns
        + precision_ns(precision)
        + precision_ns(CLIENT_PRECISION)
    )
    return NtpSample(
        server=server,
        t1_ns=t1,
        t2_ns=t2,
        t3_ns=t3,
        t4_ns=t4,
        offset_ns=offset,
        delay_ns=delay,
        root_distance_ns=distance,
        root_delay_ns=root_delay_ns,
        root_dispersion_ns=root_dispersion_ns,
        stratum=stratum,
        leap=leap,
        precision=precision,
        truth_t1_ns=truth_t1_ns,
        truth_t4_ns=truth_t4_ns,
    )


class NtpClient:
    """Queries one server over UDP, reading the node's clock for T1 and T4."""

    def __init__(
        self,
        host: str,
        port: int = 123,
        clock: DualClock | None = None,
        timeout_s: float = 1.0,
    ) -> None:
        from skewlab.clocks.oscillator import NodeClock

        self.host = host
        self.port = port
        self.clock: DualClock = clock if clock is not None else NodeClock()
        self.timeout_s = timeout_s
        self.name = f"{host}:{port}"
        self.rejected: Counter[str] = Counter()
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        family, _, _, _, addr = infos[0]
        self._addr = addr
        self._sock = socket.socket(family, socket.SOCK_DGRAM)

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> NtpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def exchange(self) -> NtpSample:
        """One request/response. Raises NtpError (and counts the reason) if no valid reply."""
        try:
            return self._exchange()
        except NtpError as e:
            self.rejected[e.reason] += 1
            raise

    def _exchange(self) -> NtpSample:
        truth1, t1 = self.clock.now()
        # The transmit field carries T1 plus random low bits: the origin check then also
        # defeats blind spoofing, while T1 itself is kept exactly here.
        xmt_raw = ns_to_ntp64(t1) ^ (secrets.randbits(8))
        req = NtpPacket(version=4, mode=MODE_CLIENT, transmit_ts=xmt_raw).encode()
        self._sock.sendto(req, self._addr)
        deadline = time.monotonic() + self.timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise NtpError("timeout", self.name)
            self._sock.settimeout(remaining)
            try:
                data, src = self._sock.recvfrom(1024)
            except TimeoutError:
                raise NtpError("timeout", self.name) from None
            truth4, t4 = self.clock.now()
            if src[0] != self._addr[0] or src[1] != self._addr[1]:
                self.rejected["wrong_source"] += 1
                continue
            try:
                pkt = NtpPacket.decode(data)
            except NtpDecodeError as e:
                self.rejected[e.reason] += 1
                continue
            if pkt.origin_ts != xmt_raw:
                self.rejected["bad_origin"] += 1  # stale or spoofed: keep waiting for ours
                continue
            break
        if pkt.mode != MODE_SERVER:
            raise NtpError("bad_mode", str(pkt.mode))
        if pkt.stratum == 0:
            raise NtpError("kiss_of_death", pkt.kiss_code or "")
        if pkt.leap == LEAP_UNSYNC:
            raise NtpError("server_unsynchronized")
        if pkt.transmit_ts == 0:
            raise NtpError("zero_transmit")
        pivot = truth4
        t2 = ntp64_to_ns(pkt.receive_ts, pivot)
        t3 = ntp64_to_ns(pkt.transmit_ts, pivot)
        return compute_sample(
            self.name,
            t1,
            t2,
            t3,
            t4,
            root_delay_ns=pkt.root_delay_ns,
            root_dispersion_ns=pkt.root_dispersion_ns,
            stratum=pkt.stratum,
            leap=pkt.leap,
            precision=pkt.precision,
            truth_t1_ns=truth1,
            truth_t4_ns=truth4,
        )

    def best_of(self, n: int = 4, gap_s: float = 0.0) -> NtpSample:
        """Burst of n exchanges; returns the minimum-delay valid sample."""
        best: NtpSample | None = None
        last_err: NtpError | None = None
        for i in range(n):
            try:
                s = self.exchange()
            except NtpError as e:
                last_err = e
                continue
            if best is None or s.delay_ns < best.delay_ns:
                best = s
            if gap_s and i + 1 < n:
                time.sleep(gap_s)
        if best is None:
            raise last_err or NtpError("no_sample")
        return best
