"""skewlab's NTP client against its embedded server over loopback UDP, with faults."""

from __future__ import annotations

import os
import socket
import threading

import pytest

from skewlab.clocks.oscillator import NodeClock, Oscillator
from skewlab.ntp.client import NtpClient, NtpError
from skewlab.ntp.packet import MODE_SERVER, NtpPacket, ns_to_ntp64
from skewlab.ntp.sample import NtpSample
from skewlab.ntp.select import FALSETICKER, SELECTED, select
from skewlab.ntp.server import NtpServer

MS = 1_000_000
NODE_AHEAD_NS = 3 * MS  # the emulated node's clock is 3 ms ahead: true θ = −3 ms


def node_clock() -> NodeClock:
    return NodeClock(Oscillator(offset_ns=NODE_AHEAD_NS))


def true_offset(s: NtpSample) -> int:
    """Reference − local at the sample's instant, from the exchange's own truth stamps."""
    assert s.truth_t4_ns is not None
    return s.truth_t4_ns - s.t4_ns


@pytest.mark.parametrize(("a_ms", "b_ms"), [(0, 0), (4, 0), (0, 4), (6, 2)], ids=lambda v: str(v))
def test_asymmetric_delay_shifts_offset_by_half_the_difference(a_ms: int, b_ms: int) -> None:
    a, b = a_ms * MS, b_ms * MS
    with (
        NtpServer("127.0.0.1", 0, request_delay_ns=a, reply_delay_ns=b) as srv,
        NtpClient("127.0.0.1", srv.port, clock=node_clock(), timeout_s=2) as client,
    ):
        samples = [client.exchange() for _ in range(6)]
    for s in samples:
        # The interval must hold the truth in every sample, whatever the asymmetry.
        assert s.earliest_offset_ns <= true_offset(s) <= s.latest_offset_ns, s
        assert s.delay_ns >= a + b
    best = min(samples, key=lambda s: s.delay_ns)
    error = best.offset_ns - true_offset(best)
    assert abs(error - (a - b) // 2) <= 300_000, (error, (a - b) / 2)


def test_falseticker_is_rejected_among_three() -> None:
    offsets = [0, 200 * MS, 0]
    with (
        NtpServer("127.0.0.1", 0, offset_ns=offsets[0]) as s0,
        NtpServer("127.0.0.1", 0, offset_ns=offsets[1]) as s1,
        NtpServer("127.0.0.1", 0, offset_ns=offsets[2]) as s2,
    ):
        outcomes: list[tuple[str, NtpSample | NtpError]] = []
        for srv in (s0, s1, s2):
            with NtpClient("127.0.0.1", srv.port, clock=node_clock()) as c:
                outcomes.append((c.name, c.best_of(4)))
    sel = select(outcomes)
    statuses = [v.status for v in sel.verdicts]
    assert statuses == [SELECTED, FALSETICKER, SELECTED], sel
    assert sel.verdicts[1].reason == "outside_intersection"
    truth = true_offset(outcomes[0][1])  # type: ignore[arg-type]
    assert sel.low_ns is not None and sel.high_ns is not None and sel.offset_ns is not None
    assert sel.low_ns <= truth <= sel.high_ns
    assert abs(sel.offset_ns - truth) < MS


def test_held_requests_do_not_block_other_clients() -> None:
    """Five clients at once against a 300 ms request delay: each waits ~300 ms, not 5 × 300."""
    a = 300 * MS
    results: list[NtpSample | NtpError] = []
    with NtpServer("127.0.0.1", 0, request_delay_ns=a) as srv:

        def one() -> None:
            with NtpClient("127.0.0.1", srv.port, timeout_s=3) as c:
                try:
                    results.append(c.exchange())
                except NtpError as e:
                    results.append(e)

        threads = [threading.Thread(target=one) for _ in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert all(isinstance(r, NtpSample) for r in results), results
    # Server hold time is excluded from δ, so measure the wall round trip from truth stamps.
    for r in results:
        assert isinstance(r, NtpSample) and r.truth_t1_ns and r.truth_t4_ns
        assert a <= r.truth_t4_ns - r.truth_t1_ns < 2 * a


def test_kod_rate_backs_off_and_deny_stops() -> None:
    with NtpServer("127.0.0.1", 0, kod="RATE") as srv, NtpClient("127.0.0.1", srv.port) as c:
        poll0 = c.poll_s
        with pytest.raises(NtpError) as ei:
            c.best_of(4)
        assert ei.value.reason == "kod_rate"
        assert c.poll_s == 2 * poll0 and c.holdoff_s > 0 and c.stopped is None
        with pytest.raises(NtpError) as ei:
            c.exchange()
        assert ei.value.reason == "holdoff"
        # One RATE kiss ended the burst; the hold-off sent nothing.
        assert srv.counters["kod_rate_sent"] == 1
    for code in ("DENY", "RSTR"):
        with NtpServer("127.0.0.1", 0, kod=code) as srv, NtpClient("127.0.0.1", srv.port) as c:
            with pytest.raises(NtpError) as ei:
                c.exchange()
            assert ei.value.reason == f"kod_{code.lower()}"
            assert c.stopped is not None and code in c.stopped
            with pytest.raises(NtpError) as ei:
                c.best_of(3)
            assert ei.value.reason == "stopped"
            assert srv.counters[f"kod_{code.lower()}_sent"] == 1
            assert c.rejected["stopped"] == 1


def test_drop_fraction_drops_about_that_many() -> None:
    n = 10  # each drop costs the 0.25 s timeout; seed 7 drops 7 of the first 10
    with (
        NtpServer("127.0.0.1", 0, drop_fraction=0.5, seed=7) as srv,
        NtpClient("127.0.0.1", srv.port, timeout_s=0.25) as c,
    ):
        ok = 0
        for _ in range(n):
            try:
                c.exchange()
                ok += 1
            except NtpError as e:
                assert e.reason == "timeout"
        dropped = srv.counters["dropped"]
    assert ok + dropped == n
    assert c.rejected["timeout"] == dropped
    assert 0 < dropped < n


def test_reply_from_wrong_port_or_with_wrong_origin_is_ignored() -> None:
    """A fake server answers first from another port and with a stale origin; only the
    genuine reply is used, and both impostors are counted."""
    real = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    real.bind(("127.0.0.1", 0))
    other.bind(("127.0.0.1", 0))
    real.settimeout(3)

    def serve() -> None:
        data, addr = real.recvfrom(2048)
        req = NtpPacket.decode(data)
        now = ns_to_ntp64(__import__("time").time_ns())
        good = NtpPacket(
            mode=MODE_SERVER, stratum=1, origin_ts=req.transmit_ts, receive_ts=now,
            transmit_ts=now, ref_id=b"TEST",
        )  # fmt: skip
        other.sendto(good.encode(), addr)  # right content, wrong source port
        stale = NtpPacket(
            mode=MODE_SERVER, stratum=1, origin_ts=req.transmit_ts ^ (1 << 40),
            receive_ts=now, transmit_ts=now,
        )  # fmt: skip
        real.sendto(stale.encode(), addr)  # right source, wrong origin
        real.sendto(os.urandom(47), addr)  # truncated garbage
        real.sendto(good.encode(), addr)

    t = threading.Thread(target=serve)
    t.start()
    try:
        with NtpClient("127.0.0.1", real.getsockname()[1], timeout_s=3) as c:
            s = c.exchange()
            assert s.stratum == 1
            assert c.rejected["wrong_source"] == 1
            assert c.rejected["bad_origin"] == 1
            assert c.rejected["truncated"] == 1
    finally:
        t.join()
        real.close()
        other.close()


def test_server_survives_garbage_and_keeps_answering() -> None:
    import random

    rng = random.Random(3)
    with NtpServer("127.0.0.1", 0) as srv:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as junk:
            for _ in range(100):
                junk.sendto(rng.randbytes(rng.randrange(0, 120)), ("127.0.0.1", srv.port))
            junk.sendto(b"", ("127.0.0.1", srv.port))
        with NtpClient("127.0.0.1", srv.port, timeout_s=2) as c:
            s = c.exchange()
        counters = dict(srv.counters)
    assert s.stratum == 1
    assert counters.get("internal_error", 0) == 0
    rejected = sum(v for k, v in counters.items() if k.startswith("rejected_"))
    # Every junk datagram was either rejected with a reason or (if it happened to be a valid
    # client request) answered; the client's own request is the one extra answer.
    assert rejected + counters["answered"] == 101 + 1
