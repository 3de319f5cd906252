"""UDP sockets of the node processes: bound with large kernel buffers, connected senders, and the
kernel's drop count of a socket.
"""

from __future__ import annotations

import socket
import sys

from skewlab.node.context import NodeFailure

SOCKET_BUFFER_BYTES = 32 << 20  # requested UDP buffer (the kernel may grant less)
# Linux's SO_RCVBUFFORCE / SO_SNDBUFFORCE (<asm-generic/socket.h>): Python's socket module does
# not export them, so without the numbers the *FORCE path was never taken.
_LINUX = sys.platform.startswith("linux")
SO_RCVBUFFORCE: int | None = getattr(socket, "SO_RCVBUFFORCE", 33 if _LINUX else None)
SO_SNDBUFFORCE: int | None = getattr(socket, "SO_SNDBUFFORCE", 32 if _LINUX else None)


def bind_udp(host: str, port: int, what: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise NodeFailure(f"cannot bind {what} to {host}:{port}: {e.strerror}") from None
    _big_buffer(sock, socket.SO_RCVBUF, SO_RCVBUFFORCE)
    _big_buffer(sock, socket.SO_SNDBUF, SO_SNDBUFFORCE)
    return sock


def _big_buffer(sock: socket.socket, opt: int, force: int | None) -> None:
    """Ask for a SOCKET_BUFFER_BYTES buffer: it absorbs the receive loop's pauses (batch
    flushes, descheduling). The *FORCE option passes net.core.[rw]mem_max when the process
    may (CAP_NET_ADMIN); otherwise the kernel caps the plain request at that maximum."""
    if force is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, force, SOCKET_BUFFER_BYTES)
            return
        except OSError:
            pass
    sock.setsockopt(socket.SOL_SOCKET, opt, SOCKET_BUFFER_BYTES)


def udp_drops(sock: socket.socket) -> int | None:
    """Datagrams the kernel dropped for this socket (its receive buffer was full), from
    /proc/net/udp[6] matched by inode; None where the kernel does not say (not Linux)."""
    import os

    try:
        inode = str(os.fstat(sock.fileno()).st_ino)
    except OSError:
        return None
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table) as f:
                next(f, None)  # header
                for line in f:
                    cols = line.split()
                    if len(cols) >= 13 and cols[9] == inode:
                        return int(cols[-1])
        except OSError:
            continue
    return None


def _connected(host: str, addr: tuple[str, int]) -> socket.socket:
    """A UDP socket on ``host`` connected to ``addr`` (one per destination)."""
    s = socket.socket(socket.AF_INET6 if ":" in addr[0] else socket.AF_INET, socket.SOCK_DGRAM)
    _big_buffer(s, socket.SO_SNDBUF, SO_SNDBUFFORCE)
    s.bind((host, 0))
    s.connect(addr)
    return s
