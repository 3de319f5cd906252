"""Embedded NTP server: answers clients with the host clock (true time) at stratum 1.

Fault options for experiments, set as constructor keywords or later as attributes (read per
request, so a nemesis can change them while the server runs):
  offset_ns          serve clock + offset (a falseticker when non-zero)
  request_delay_ns   the request "arrives" this much later: T2 = receipt + delay
  reply_delay_ns     the reply "arrives" this much after T3 (T3 = actual send − delay)
  drop_fraction      fraction of requests silently dropped (seeded RNG)
  kod                answer every request with this kiss-o'-death code (RATE, DENY, RSTR)
Delays are kept in a heap served by the receive loop, so a held request never blocks answers
to other clients. With delays (a, b) a client measures θ shifted by (a − b)/2 and δ grown by
a + b, exactly as on an asymmetric link.
"""

from __future__ import annotations

import heapq
import itertools
import random
import select
import socket
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from skewlab.ntp import stamps
from skewlab.ntp.packet import (
    KOD_CODES,
    LEAP_NONE,
    LEAP_UNSYNC,
    MODE_CLIENT,
    MODE_SERVER,
    STRATUM_KOD,
    NtpDecodeError,
    NtpPacket,
    ns_to_ntp64,
    ns_to_short,
)
from skewlab.timebase import HOST_CLOCK, HostClock, TimeSource

SERVER_PRECISION = -20  # ~1 µs; the Python receive path cannot honestly claim better
_IDLE_WAIT_S = 0.2  # longest the loop sleeps when nothing is due (bounds stop latency)


@dataclass(order=True, slots=True)
class _Due:
    """A held request or reply, due at ``due_ns`` on the server's clock."""

    due_ns: int
    seq: int
    kind: str = field(compare=False)  # "request" | "reply"
    req: NtpPacket = field(compare=False)
    addr: Any = field(compare=False)
    t2_ns: int = field(compare=False)  # true receive instant (before any offset fault)


class NtpServer:
    """RFC 5905 server mode over UDP. Garbage input is counted, never fatal."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: TimeSource = HOST_CLOCK,
        stratum: int = 1,
        ref_id: bytes = b"SKEW",
        root_dispersion_ns: int = 1_000,
        *,
        offset_ns: int = 0,
        request_delay_ns: int = 0,
        reply_delay_ns: int = 0,
        drop_fraction: float = 0.0,
        kod: str | None = None,
        seed: int | None = None,
    ) -> None:
        if not 1 <= stratum <= 15:
            raise ValueError(f"stratum must be 1..15, not {stratum}")
        if request_delay_ns < 0 or reply_delay_ns < 0:
            raise ValueError("delays must be >= 0 ns")
        if not 0.0 <= drop_fraction <= 1.0:
            raise ValueError(f"drop_fraction must be within [0, 1], not {drop_fraction}")
        if kod is not None and kod not in KOD_CODES:
            raise ValueError(f"kod must be one of {', '.join(KOD_CODES)}, not {kod!r}")
        self.clock = clock
        self.stratum = stratum
        self.ref_id = ref_id
        self.root_dispersion_ns = root_dispersion_ns  # claimed error bound of our clock, ns
        self.offset_ns = offset_ns  # served − true, ns (falseticker fault)
        self.request_delay_ns = request_delay_ns  # added client→server path delay, ns
        self.reply_delay_ns = reply_delay_ns  # added server→client path delay, ns
        self.drop_fraction = drop_fraction
        self.kod = kod
        self._rng = random.Random(seed)
        self._seq = itertools.count()
        self._heap: list[_Due] = []
        self.counters: Counter[str] = Counter()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        # T2 from the kernel's arrival stamp when serving the real host clock (ntp/stamps.py)
        self._stamped = isinstance(clock, HostClock) and stamps.enable(self.sock)
        try:
            self.sock.bind((host, port))  # raises OSError (EADDRINUSE) for a port in use
        except OSError:
            self.sock.close()
            raise
        # Room for bursts from many clients while a held item is being served.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.address: tuple[str, int] = self.sock.getsockname()[:2]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.address[1]

    def _served(self, true_ns: int) -> int:
        return true_ns + self.offset_ns

    def reply_to(self, data: bytes, t2_ns: int) -> bytes | None:
        """Build the immediate reply to one request datagram (no delay or drop faults), or
        None (counted) if it is not a client request."""
        req = self._parse(data)
        if req is None:
            return None
        return self._build(req, t2_ns, self.clock.now_ns())

    def _parse(self, data: bytes) -> NtpPacket | None:
        try:
            req = NtpPacket.decode(data)
        except NtpDecodeError as e:
            self.counters[f"rejected_{e.reason}"] += 1
            return None
        if req.mode != MODE_CLIENT:
            self.counters["rejected_mode"] += 1
            return None
        return req

    def _build(self, req: NtpPacket, t2_ns: int, t3_ns: int) -> bytes:
        """The reply to ``req`` received at true T2 and sent at true T3 (offset applied here)."""
        if self.kod is not None:
            self.counters[f"kod_{self.kod.lower()}_sent"] += 1
            return NtpPacket(
                leap=LEAP_UNSYNC,
                version=req.version,
                mode=MODE_SERVER,
                stratum=STRATUM_KOD,
                poll=req.poll,
                precision=SERVER_PRECISION,
                ref_id=self.kod.encode("ascii"),
                origin_ts=req.transmit_ts,
                receive_ts=ns_to_ntp64(self._served(t2_ns)),
                transmit_ts=ns_to_ntp64(self._served(t3_ns)),
            ).encode()
        self.counters["answered"] += 1
        return NtpPacket(
            leap=LEAP_NONE,
            version=req.version,
            mode=MODE_SERVER,
            stratum=self.stratum,
            poll=req.poll,
            precision=SERVER_PRECISION,
            root_delay=0,
            root_dispersion=ns_to_short(self.root_dispersion_ns),
            ref_id=self.ref_id,
            ref_ts=ns_to_ntp64(self._served(t2_ns)),
            origin_ts=req.transmit_ts,
            receive_ts=ns_to_ntp64(self._served(t2_ns)),
            transmit_ts=ns_to_ntp64(self._served(t3_ns)),
        ).encode()

    def _send(self, out: bytes, addr: Any) -> None:
        try:
            self.sock.sendto(out, addr)
        except OSError:
            self.counters["send_failed"] += 1

    def _push(self, due_ns: int, kind: str, req: NtpPacket, addr: Any, t2_ns: int) -> None:
        heapq.heappush(self._heap, _Due(due_ns, next(self._seq), kind, req, addr, t2_ns))

    def handle(self, data: bytes, addr: Any, received_ns: int) -> None:
        """Process one datagram received at ``received_ns`` (true time): drop, hold or answer."""
        req = self._parse(data)
        if req is None:
            return
        if self.drop_fraction and self._rng.random() < self.drop_fraction:
            self.counters["dropped"] += 1
            return
        if self.request_delay_ns > 0:
            t2 = received_ns + self.request_delay_ns
            self.counters["held_request"] += 1
            self._push(t2, "request", req, addr, t2)
        else:
            self._respond(req, addr, received_ns)

    def _respond(self, req: NtpPacket, addr: Any, t2_ns: int) -> None:
        """Answer now, or hold the reply for the reply-path delay."""
        b = self.reply_delay_ns
        if b > 0:
            self._push(self.clock.now_ns() + b, "reply", req, addr, t2_ns)
            return
        self._send(self._build(req, t2_ns, self.clock.now_ns()), addr)

    def run_due(self) -> None:
        """Handle every held request/reply whose time has come."""
        while self._heap and self._heap[0].due_ns <= self.clock.now_ns():
            item = heapq.heappop(self._heap)
            if item.kind == "request":
                self._respond(item.req, item.addr, item.t2_ns)
            else:
                # Stamp T3 as if the packet then spent exactly reply_delay on the wire; any
                # lateness of this loop counts as server hold time, which δ excludes.
                t3 = max(item.t2_ns, self.clock.now_ns() - self.reply_delay_ns)
                self._send(self._build(item.req, item.t2_ns, t3), item.addr)

    def _wait_s(self) -> float:
        if not self._heap:
            return _IDLE_WAIT_S
        return min(_IDLE_WAIT_S, max(0.0, (self._heap[0].due_ns - self.clock.now_ns()) / 1e9))

    def serve_forever(self) -> None:
        """Receive loop: never sleeps past the next held item, never dies on bad input."""
        while not self._stop.is_set():
            try:
                readable, _, _ = select.select([self.sock], [], [], self._wait_s())
            except (OSError, ValueError):
                if self._stop.is_set():
                    break
                raise
            if readable:
                kernel_ns = None
                try:
                    if self._stamped:
                        data, addr, kernel_ns = stamps.recv_stamped(self.sock, 2048)
                    else:
                        data, addr = self.sock.recvfrom(2048)
                except OSError:
                    if self._stop.is_set():
                        break
                    self.counters["recv_error"] += 1
                    continue
                received = self.clock.now_ns() if kernel_ns is None else kernel_ns
                try:
                    self.handle(data, addr, received)
                except Exception:  # a bug must not take the server down mid-experiment
                    self.counters["internal_error"] += 1
            self.run_due()

    def start(self) -> NtpServer:
        self._thread = threading.Thread(target=self.serve_forever, name="ntp-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self.sock.close()

    def __enter__(self) -> NtpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
