"""RFC 5905 client: one exchange = four timestamps, offset, delay, root distance.

T1 and T4 are read from the node's (local) clock, T2 and T3 come from the server.
  offset θ = ((T2 − T1) + (T3 − T4)) / 2      reference − local; positive: local is behind
  delay  δ = (T4 − T1) − (T3 − T2)
  root distance λ = δ/2 + root_delay/2 + root_dispersion + server precision + client precision
The true offset lies in [θ − λ, θ + λ] whatever the path asymmetry.

Replies are validated in a fixed order (``check_reply``): datagrams that are not a reply to our
request (undecodable, wrong mode, wrong origin, wrong source) are counted and ignored while we
keep waiting for ours; a reply to our request that is unusable fails the exchange with a reason.
Kiss-o'-death: RATE doubles the poll interval and holds off until it elapses; DENY and RSTR stop
this client for good (``stopped`` says why).
"""

from __future__ import annotations

import secrets
import socket
import threading
from collections import Counter
from collections.abc import Callable
from typing import Protocol

from skewlab.ntp import stamps
from skewlab.ntp.packet import (
    DECODE_REASONS,
    KOD_DENY,
    KOD_RATE,
    KOD_RSTR,
    LEAP_UNSYNC,
    MODE_CLIENT,
    MODE_SERVER,
    STRATUM_KOD,
    STRATUM_UNSYNC,
    NtpDecodeError,
    NtpPacket,
    ntp64_to_ns,
    precision_ns,
)
from skewlab.ntp.sample import NtpSample
from skewlab.timebase import HOST_CLOCK, HostClock, Scheduler, monotonic_s

CLIENT_PRECISION = -20  # ~1 µs: what a Python process can resolve when reading the clock
MAX_POLL_S = 1024.0  # RFC 5905 MAXPOLL = 2**10 s: the longest a RATE back-off grows to

# Reasons a datagram is not the reply to our request: counted, and we keep waiting.
NOT_OURS_REASONS = DECODE_REASONS | {"bad_mode", "bad_origin", "wrong_source"}
# Reasons the reply to our request gives no sample: the exchange fails.
REPLY_REASONS = frozenset(
    {
        "kod_rate",  # kiss-o'-death RATE: back off
        "kod_deny",  # kiss-o'-death DENY: stop
        "kod_rstr",  # kiss-o'-death RSTR: stop
        "kod_other",  # stratum 0 with an unknown code: no sample, no state change
        "server_unsynchronized",  # leap indicator 3
        "bad_stratum",  # stratum 16 (unsynchronized) or reserved 17..255
        "zero_transmit",  # T3 field is 0: no valid server time
        "zero_receive",  # T2 field is 0: no valid server time
        "bad_server_times",  # T3 < T2: the server claims to answer before it received
        "negative_delay",  # δ < 0: timestamps inconsistent
    }
)
# Reasons an exchange ends without a reply at all.
EXCHANGE_REASONS = frozenset({"timeout", "unreachable", "holdoff", "stopped", "send_failed"})
ALL_REASONS = NOT_OURS_REASONS | REPLY_REASONS | EXCHANGE_REASONS


class DualClock(Protocol):
    def now(self) -> tuple[int, int]:  # (truth_ns, local_ns)
        ...


class NtpError(Exception):
    """An exchange or reply that produced no valid sample; ``reason`` is a short tag."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


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
    # Halves round up (and θ rounds down, within 1 ns): λ never understates the bound.
    distance = (
        (delay + 1) // 2
        + 1
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


def check_reply(data: bytes, sent_transmit: int) -> NtpPacket:
    """Validate a datagram as the server reply to the request we sent with ``sent_transmit``.

    Raises NtpError whose reason is in NOT_OURS_REASONS (not our reply) or REPLY_REASONS
    (our reply, but unusable). The origin check comes before the kiss-o'-death check, so a
    blind attacker cannot make us back off or stop.
    """
    try:
        pkt = NtpPacket.decode(data)
    except NtpDecodeError as e:
        raise NtpError(e.reason, str(e)) from None
    if pkt.mode != MODE_SERVER:
        raise NtpError("bad_mode", str(pkt.mode))
    if pkt.origin_ts != sent_transmit:
        raise NtpError("bad_origin", f"{pkt.origin_ts:#x} != {sent_transmit:#x}")
    if pkt.stratum == STRATUM_KOD:
        code = pkt.kiss_code or ""
        reason = {KOD_RATE: "kod_rate", KOD_DENY: "kod_deny", KOD_RSTR: "kod_rstr"}
        raise NtpError(reason.get(code, "kod_other"), code)
    if pkt.leap == LEAP_UNSYNC:
        raise NtpError("server_unsynchronized")
    if pkt.stratum >= STRATUM_UNSYNC:
        raise NtpError("bad_stratum", str(pkt.stratum))
    if pkt.transmit_ts == 0:
        raise NtpError("zero_transmit")
    if pkt.receive_ts == 0:
        raise NtpError("zero_receive")
    return pkt


def sample_from_reply(
    server: str,
    pkt: NtpPacket,
    t1: int,
    t4: int,
    truth_t1_ns: int | None = None,
    truth_t4_ns: int | None = None,
) -> NtpSample:
    """Turn a checked reply into a sample; T2/T3 eras are resolved around the local T4."""
    t2 = ntp64_to_ns(pkt.receive_ts, t4)
    t3 = ntp64_to_ns(pkt.transmit_ts, t4)
    if t3 < t2:
        raise NtpError("bad_server_times", f"T3 − T2 = {t3 - t2} ns")
    return compute_sample(
        server,
        t1,
        t2,
        t3,
        t4,
        root_delay_ns=pkt.root_delay_ns,
        root_dispersion_ns=pkt.root_dispersion_ns,
        stratum=pkt.stratum,
        leap=pkt.leap,
        precision=pkt.precision,
        truth_t1_ns=truth_t1_ns,
        truth_t4_ns=truth_t4_ns,
    )


def burst(
    exchange: Callable[[], NtpSample], n: int, pause: Callable[[], None] | None = None
) -> NtpSample:
    """A burst of ``n`` exchanges: the valid sample of minimum delay δ (the one least
    disturbed by queueing). A kiss-o'-death, a stopped or held-off client ends the burst early;
    ``pause`` runs between exchanges. Raises the last NtpError if no exchange gave a sample.
    One home for real clients (``NtpClient.best_of``) and modelled ones (the simulator)."""
    best: NtpSample | None = None
    last_err: NtpError | None = None
    for i in range(n):
        try:
            s = exchange()
        except NtpError as e:
            last_err = e
            if e.reason.startswith("kod_") or e.reason in ("stopped", "holdoff"):
                break
            continue
        if best is None or s.delay_ns < best.delay_ns:
            best = s
        if pause is not None and i + 1 < n:
            pause()
    if best is None:
        raise last_err or NtpError("timeout", "no exchange attempted")
    return best


class NtpClient:
    """Queries one server over UDP, reading the node's clock for T1 and T4.

    ``rejected`` counts, by reason (see ALL_REASONS), every datagram ignored and every
    exchange that failed. ``poll_s`` is the current poll interval (doubled by a RATE kiss);
    ``stopped`` is None or why this client no longer queries (a DENY or RSTR kiss).
    """

    def __init__(
        self,
        host: str,
        port: int = 123,
        clock: DualClock | None = None,
        timeout_s: float = 1.0,
        *,
        poll_s: float = 1.0,
        max_poll_s: float = MAX_POLL_S,
        scheduler: Scheduler = HOST_CLOCK,
        name: str | None = None,
    ) -> None:
        from skewlab.clocks.oscillator import NodeClock

        self.host = host
        self.port = port
        self.clock: DualClock = clock if clock is not None else NodeClock()
        self.timeout_s = timeout_s
        self.poll_s = poll_s  # seconds; current poll interval, grows on RATE
        self.max_poll_s = max(max_poll_s, poll_s)
        self.stopped: str | None = None  # e.g. "kiss-o'-death DENY"
        self.rejected: Counter[str] = Counter()
        # true time (ns, on ``scheduler``) before which no request is sent (RATE); the pause
        # between a burst's exchanges waits through it too. The reply deadline is a socket
        # timeout on the host's monotonic clock.
        self.scheduler = scheduler
        self._hold_until_ns = 0
        self._closed = threading.Event()
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        family, _, _, _, addr = infos[0]
        self._addr = addr
        # where the server is, and what samples and verdicts call it (its address unless the
        # caller names it: a node names the experiment's servers as the spec does)
        self.address = f"[{addr[0]}]:{addr[1]}" if family == socket.AF_INET6 else f"{host}:{port}"
        self.name = name if name is not None else self.address
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        # T4 from the kernel's arrival stamp when the node clock reads the real host clock
        # (its local time at any host instant is then known exactly: ntp/stamps.py)
        self._local_at = None
        clk = self.clock
        if (
            isinstance(clk, NodeClock)
            and isinstance(clk.host, HostClock)
            and stamps.enable(self._sock)
        ):
            self._local_at = clk.oscillator.local_at

    def close(self) -> None:
        self._closed.set()
        self._sock.close()

    def __enter__(self) -> NtpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def holdoff_s(self) -> float:
        """Seconds left before a RATE back-off lets us send again (0 if none)."""
        return max(0.0, (self._hold_until_ns - self.scheduler.now_ns()) / 1e9)

    def exchange(self) -> NtpSample:
        """One request/response. Raises NtpError (and counts the reason) if no valid reply."""
        try:
            return self._exchange()
        except NtpError as e:
            self.rejected[e.reason] += 1
            self._on_failure(e)
            raise

    def _on_failure(self, e: NtpError) -> None:
        if e.reason == "kod_rate":
            self.poll_s = min(self.poll_s * 2, self.max_poll_s)
            self._hold_until_ns = self.scheduler.now_ns() + round(self.poll_s * 1e9)
        elif e.reason in ("kod_deny", "kod_rstr"):
            self.stopped = f"kiss-o'-death {e.detail}"

    def _exchange(self) -> NtpSample:
        if self.stopped is not None:
            raise NtpError("stopped", self.stopped)
        if self.holdoff_s > 0:
            raise NtpError("holdoff", f"{self.holdoff_s:.1f} s left after a RATE kiss")
        # The transmit field is 64 random bits (as chrony sends), not T1: the origin check then
        # defeats blind spoofing, the request is built before T1 is read (nothing between
        # reading T1 and sending), and T1 itself is kept exactly here.
        xmt_raw = secrets.randbits(64)
        req = NtpPacket(version=4, mode=MODE_CLIENT, transmit_ts=xmt_raw).encode()
        truth1, t1 = self.clock.now()
        try:
            self._sock.sendto(req, self._addr)
        except OSError as e:
            raise NtpError("send_failed", str(e)) from None
        deadline = monotonic_s() + self.timeout_s
        while True:
            remaining = deadline - monotonic_s()
            if remaining <= 0:
                raise NtpError("timeout", self.name)
            self._sock.settimeout(remaining)
            try:
                if self._local_at is None:
                    data, src = self._sock.recvfrom(2048)
                    kernel_ns = None
                else:
                    data, src, kernel_ns = stamps.recv_stamped(self._sock, 2048)
            except TimeoutError:
                raise NtpError("timeout", self.name) from None
            except ConnectionRefusedError:  # ICMP port unreachable: nobody listens there
                raise NtpError("unreachable", self.name) from None
            except OSError:
                continue
            if kernel_ns is not None and self._local_at is not None:
                truth4, t4 = kernel_ns, self._local_at(kernel_ns)
            else:
                truth4, t4 = self.clock.now()
            if src[0] != self._addr[0] or src[1] != self._addr[1]:
                self.rejected["wrong_source"] += 1
                continue
            try:
                pkt = check_reply(data, xmt_raw)
            except NtpError as e:
                if e.reason in NOT_OURS_REASONS:
                    self.rejected[e.reason] += 1  # stale, spoofed or garbage: keep waiting
                    continue
                raise
            return sample_from_reply(self.name, pkt, t1, t4, truth1, truth4)

    def best_of(self, n: int = 4, gap_s: float = 0.0) -> NtpSample:
        """Burst of n exchanges, ``gap_s`` apart (waited through the scheduler); returns the
        minimum-delay valid sample (:func:`burst`)."""
        gap_ns = round(gap_s * 1e9)
        sch = self.scheduler

        def pause() -> None:
            sch.wait_until(sch.now_ns() + gap_ns, self._closed)

        return burst(self.exchange, n, pause if gap_ns > 0 else None)
