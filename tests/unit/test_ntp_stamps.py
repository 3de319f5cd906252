"""Kernel receive timestamps (ntp/stamps.py): the arrival instant, not the time of the read."""

from __future__ import annotations

import socket
import sys
import time

import pytest

from skewlab.ntp import stamps
from skewlab.ntp.client import NtpClient
from skewlab.ntp.server import NtpServer

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")


def test_the_stamp_is_the_arrival_not_the_late_read() -> None:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    assert stamps.enable(rx)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    # Linux turns receive stamping on for the whole stack lazily (a deferred static key) when
    # the first socket asks; a datagram that arrives before that is stamped at the read
    # instead. Warm up until a datagram read late carries an earlier stamp.
    for _ in range(50):
        tx.sendto(b"w", rx.getsockname())
        time.sleep(0.01)
        _d, _a, warm = stamps.recv_stamped(rx, 100)
        if warm is not None and warm < time.time_ns() - 5_000_000:
            break
    sent = time.time_ns()
    tx.sendto(b"x", rx.getsockname())
    time.sleep(0.2)  # the reader is late, as a busy node's thread would be
    data, addr, stamp = stamps.recv_stamped(rx, 100)
    read = time.time_ns()
    assert data == b"x" and addr[1] == tx.getsockname()[1]
    assert stamp is not None and sent <= stamp < sent + 50_000_000 < read - 100_000_000
    rx.close()
    tx.close()


def test_without_the_option_there_is_no_stamp() -> None:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.sendto(b"y", rx.getsockname())
    assert stamps.recv_stamped(rx, 100)[2] is None  # nothing invented
    rx.close()
    tx.close()


def test_client_and_server_use_kernel_stamps_on_the_host_clock() -> None:
    with NtpServer("127.0.0.1", 0) as srv:
        assert srv._stamped
        with NtpClient("127.0.0.1", srv.port, timeout_s=1.0) as c:
            assert c._local_at is not None
            s = c.exchange()
            assert 0 < s.delay_ns < 50_000_000
            assert abs(s.offset_ns) < 5_000_000  # the default node clock is the host clock
            assert s.truth_t1_ns <= s.truth_t4_ns
