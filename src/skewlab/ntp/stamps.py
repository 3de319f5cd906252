"""Kernel receive timestamps (Linux SO_TIMESTAMPNS) for NTP's T2 and T4 and workers' receipts.

A timestamp taken in Python after ``recvfrom`` returns includes the wait for the interpreter
lock and the scheduler: on a busy 2-core host that is up to milliseconds, and it lands on one
side of the exchange only (offset error = half of it). The kernel stamps the datagram with the
host's realtime clock when it arrives, which is what NTP implementations use (chrony does).
skewlab's emulated clocks are functions of that host clock, so the node's T4 is its
oscillator's reading at the kernel's instant. Where the option is missing, the caller's own
timestamp after the receive is used (``recv_stamped`` returns None for the kernel instant).
A worker's receive loop (``node.worker.Receiver``) reads the stamp itself (``ANC_SIZE``,
``TIMESPEC``) on its hot path.
"""

from __future__ import annotations

import socket
import struct
import sys

from skewlab.timebase import host_ns

# <asm-generic/socket.h>: SO_TIMESTAMPNS_OLD (= SCM_TIMESTAMPNS_OLD); on 64-bit Linux its
# struct timespec is two 64-bit fields. Python's socket module does not export it.
SO_TIMESTAMPNS = 35
TIMESPEC = struct.Struct("qq")
ANC_SIZE = socket.CMSG_SPACE(TIMESPEC.size) if hasattr(socket, "CMSG_SPACE") else 0
_SANE_NS = 10_000_000_000  # a kernel stamp older than this, or in the future, is not used


def enable(sock: socket.socket) -> bool:
    """Ask the kernel to stamp every datagram this socket receives; False if it cannot.

    When no socket of the host had asked before, the kernel turns arrival stamping on through
    deferred work: a datagram that arrives in that moment (well under the nodes' start-up) is
    stamped when it is read instead."""
    if not sys.platform.startswith("linux") or struct.calcsize("l") != 8 or not ANC_SIZE:
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True


def recv_stamped(sock: socket.socket, bufsize: int) -> tuple[bytes, object, int | None]:
    """``recvfrom`` with the kernel's arrival instant on the host realtime clock (ns), or None
    when the datagram carries no usable stamp."""
    data, anc, _flags, addr = sock.recvmsg(bufsize, ANC_SIZE)
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(payload) >= 16:
            sec, nsec = TIMESPEC.unpack_from(payload)
            stamp = sec * 1_000_000_000 + nsec
            now = host_ns()
            if now - _SANE_NS <= stamp <= now:
                return data, addr, stamp
    return data, addr, None
