"""Embedded NTP server: answers clients with the host clock (true time) at stratum 1."""

from __future__ import annotations

import socket
import threading
from collections import Counter

from skewlab.ntp.packet import (
    MODE_CLIENT,
    MODE_SERVER,
    NtpDecodeError,
    NtpPacket,
    ns_to_ntp64,
    ns_to_short,
)
from skewlab.timebase import HOST_CLOCK, TimeSource

SERVER_PRECISION = -20  # ~1 µs; the Python receive path cannot honestly claim better


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
    ) -> None:
        self.clock = clock
        self.stratum = stratum
        self.ref_id = ref_id
        self.root_dispersion_ns = root_dispersion_ns
        self.counters: Counter[str] = Counter()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind((host, port))  # raises OSError (EADDRINUSE) for a port in use
        self.address: tuple[str, int] = self.sock.getsockname()[:2]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.address[1]

    def reply_to(self, data: bytes, t2_ns: int) -> bytes | None:
        """Build the reply to one request datagram, or None (counted) if it is not one."""
        try:
            req = NtpPacket.decode(data)
        except NtpDecodeError as e:
            self.counters[f"rejected_{e.reason}"] += 1
            return None
        if req.mode != MODE_CLIENT:
            self.counters["rejected_mode"] += 1
            return None
        t3_ns = self.clock.now_ns()
        reply = NtpPacket(
            leap=0,
            version=req.version,
            mode=MODE_SERVER,
            stratum=self.stratum,
            poll=req.poll,
            precision=SERVER_PRECISION,
            root_delay=0,
            root_dispersion=ns_to_short(self.root_dispersion_ns),
            ref_id=self.ref_id,
            ref_ts=ns_to_ntp64(t2_ns),
            origin_ts=req.transmit_ts,
            receive_ts=ns_to_ntp64(t2_ns),
            transmit_ts=ns_to_ntp64(t3_ns),
        )
        self.counters["answered"] += 1
        return reply.encode()

    def serve_forever(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(2048)
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    break
                raise
            t2 = self.clock.now_ns()
            out = self.reply_to(data, t2)
            if out is not None:
                try:
                    self.sock.sendto(out, addr)
                except OSError:
                    self.counters["send_failed"] += 1

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
