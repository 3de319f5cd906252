"""Embedded server logic on a virtual clock: delays, offsets, KoD, garbage."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skewlab.ntp.packet import (
    MODE_CLIENT,
    MODE_SERVER,
    NtpPacket,
    ns_to_ntp64,
    ntp64_to_ns,
)
from skewlab.ntp.query import parse_hostport
from skewlab.ntp.server import NtpServer
from skewlab.timebase import VirtualClock

T0 = 1_900_000_000 * 10**9


@pytest.fixture
def sink() -> Iterator[socket.socket]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(2)
    yield s
    s.close()


def request(t1: int) -> bytes:
    return NtpPacket(mode=MODE_CLIENT, transmit_ts=ns_to_ntp64(t1)).encode()


def test_delays_and_offset_stamp_t2_t3(sink: socket.socket) -> None:
    clock = VirtualClock(T0)
    a, b, off = 4_000_000, 1_000_000, 200_000_000
    srv = NtpServer(clock=clock, request_delay_ns=a, reply_delay_ns=b, offset_ns=off)
    try:
        addr = sink.getsockname()
        srv.handle(request(T0 - 7), addr, clock.now_ns())
        srv.run_due()
        assert srv.counters["answered"] == 0  # request still held
        clock.advance(a + 300)  # the loop wakes 300 ns late: server hold time
        srv.run_due()  # the request is processed; the reply is now held
        assert srv.counters["answered"] == 0
        clock.advance(b + 900)
        srv.run_due()
        reply = NtpPacket.decode(sink.recv(100))
    finally:
        srv.stop()
    assert reply.mode == MODE_SERVER and reply.origin_ts == ns_to_ntp64(T0 - 7)
    t2 = ntp64_to_ns(reply.receive_ts, T0)
    t3 = ntp64_to_ns(reply.transmit_ts, T0)
    assert t2 == T0 + a + off  # arrival after the request-path delay, shifted by the fault
    assert t3 == clock.now_ns() - b + off  # leaves so as to arrive exactly b later
    assert srv.counters["answered"] == 1 and srv.counters["held_request"] == 1


def test_kod_reply_shape(sink: socket.socket) -> None:
    clock = VirtualClock(T0)
    srv = NtpServer(clock=clock, kod="RATE")
    try:
        srv.handle(request(T0), sink.getsockname(), T0)
        reply = NtpPacket.decode(sink.recv(100))
    finally:
        srv.stop()
    assert (reply.stratum, reply.leap, reply.kiss_code) == (0, 3, "RATE")
    assert reply.origin_ts == ns_to_ntp64(T0)


def test_bad_options_are_refused() -> None:
    for kw in ({"kod": "NOPE"}, {"drop_fraction": 1.5}, {"request_delay_ns": -1}, {"stratum": 0}):
        with pytest.raises(ValueError):
            NtpServer(**kw)  # type: ignore[arg-type]


@settings(max_examples=200)
@given(data=st.binary(max_size=120))
def test_reply_to_garbage_is_none_or_a_reply(data: bytes) -> None:
    srv = _shared_server()
    before = sum(srv.counters.values())
    out = srv.reply_to(data, T0)
    assert sum(srv.counters.values()) == before + 1  # every datagram is counted once
    if out is None:
        assert any(k.startswith("rejected_") for k in srv.counters)
    else:
        req = NtpPacket.decode(data)
        reply = NtpPacket.decode(out)
        assert req.mode == MODE_CLIENT
        assert reply.mode == MODE_SERVER and reply.origin_ts == req.transmit_ts


_SERVER: list[NtpServer] = []


def _shared_server() -> NtpServer:
    if not _SERVER:
        _SERVER.append(NtpServer(clock=VirtualClock(T0)))  # never started: no thread
    return _SERVER[0]


def teardown_module() -> None:
    for srv in _SERVER:
        srv.stop()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1", ("127.0.0.1", 123)),
        ("127.0.0.1:12300", ("127.0.0.1", 12300)),
        ("localhost:5", ("localhost", 5)),
        ("::1", ("::1", 123)),
        ("[::1]:4123", ("::1", 4123)),
        ("[::1]", ("::1", 123)),
    ],
)
def test_parse_hostport(text: str, expected: tuple[str, int]) -> None:
    assert parse_hostport(text) == expected


@pytest.mark.parametrize("text", ["host:0", "host:x", "[::1", ":123", "[::1]x"])
def test_parse_hostport_errors(text: str) -> None:
    with pytest.raises(ValueError):
        parse_hostport(text)
