"""Hostile network: a worker under a flood of garbage and forged events keeps recording the
real experiment with exact rejection counts; spoofed NTP replies never change a clock."""

from __future__ import annotations

import random
import socket
import struct
import threading
import time
from collections import Counter
from pathlib import Path

from skewlab.clocks.oscillator import NodeClock, Oscillator
from skewlab.clocks.sources import make_sources
from skewlab.clocks.sync import SyncState
from skewlab.net import wire
from skewlab.node.sync import NtpPoller
from skewlab.node.udp import bind_udp, udp_drops
from skewlab.node.worker import Receiver
from skewlab.ntp.client import NtpClient
from skewlab.ntp.packet import MODE_SERVER, NtpPacket, ns_to_ntp64, ns_to_short
from skewlab.trace import PartWriter, read_parts, receipt_schema, wire_sentinel_columns

SOURCES = ["system", "ntp", "truetime", "skewlab"]
KEY = b"experiment key"
FORGED_LOCAL = 0x7E57_F0F0_F0F0  # send_local_ns carried by every forged packet


def _flat(codec: wire.WireCodec) -> tuple:
    return (2, 5, 4, 6) * codec.n


def test_flood_of_garbage_and_forged_events(tmp_path: Path) -> None:
    total = 600
    sock = bind_udp("127.0.0.1", 0, "test worker")
    codec = wire.WireCodec(SOURCES, KEY)
    clock = NodeClock(Oscillator(offset_ns=1_000_000, t0_ns=time.time_ns()))
    sources = make_sources(SOURCES, SyncState(clock=clock))
    writer = PartWriter(tmp_path, "events", receipt_schema(SOURCES), 128,
                        wire_sentinel_columns(SOURCES))  # fmt: skip
    stop = threading.Event()
    rx = Receiver(sock, codec, clock, sources, writer, total, stop)
    t = threading.Thread(target=rx.run)
    t.start()
    addr = sock.getsockname()
    rng = random.Random(10)
    forger = wire.WireCodec(SOURCES, b"guessed key")
    unsigned = wire.WireCodec(SOURCES)
    hostile: list[bytes] = []
    expect: Counter[str] = Counter()
    for _ in range(2000):
        n = rng.randrange(0, 250)
        junk = bytes([rng.randrange(256) for _ in range(n)])
        if junk[:1] == b"S":
            junk = b"X" + junk[1:]
        hostile.append(junk)
        expect["truncated" if n < wire.FIXED_LEN else "bad_magic"] += 1
    for i in range(2000):  # valid-looking events for ids of this run, wrong key
        hostile.append(forger.encode_flat(wire.KIND_EVENT, i % total, i, FORGED_LOCAL,
                                          _flat(codec), 0))  # fmt: skip
        expect["bad_mac"] += 1
    for i in range(500):  # no HMAC at all
        hostile.append(unsigned.encode_flat(wire.KIND_EVENT, i, i, FORGED_LOCAL, _flat(codec), 0))
        expect["unauthenticated"] += 1
    rng.shuffle(hostile)
    legit = [codec.encode_flat(wire.KIND_EVENT, i, i, 1000 + i, _flat(codec), 0)
             for i in range(total)]  # fmt: skip
    legit.append(codec.encode_flat(wire.KIND_END, total, total, 0, _flat(codec), 0))
    attacker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    coordinator = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    per = len(hostile) // total + 1
    for i, pkt in enumerate(legit):  # the real stream, interleaved with the flood
        for h in hostile[i * per : (i + 1) * per]:
            attacker.sendto(h, addr)
        coordinator.sendto(pkt, addr)
        if i % 50 == 0:
            time.sleep(0.002)
    time.sleep(0.5)
    stop.set()
    t.join(timeout=10)
    drops = udp_drops(sock)
    writer.flush()
    sock.close()
    c = rx.counts()
    assert drops == 0  # nothing shed by the kernel, so every count below is exact
    assert {k.removeprefix("rejected_"): v for k, v in c.items()
            if k.startswith("rejected_")} == dict(expect)  # fmt: skip
    assert c["rejected"] == len(hostile)
    assert c["received"] == total and c["lost"] == 0 and c["duplicates"] == 0
    table = read_parts(tmp_path, "events")
    assert sorted(table.column("event_id").to_pylist()) == list(range(total))
    sent_local = table.column("send_local_ns").to_pylist()
    assert FORGED_LOCAL not in sent_local  # nothing forged in the trace
    assert sorted(sent_local) == [1000 + i for i in range(total)]
    attacker.close()
    coordinator.close()


def _reply(req: bytes, origin_ok: bool, offset_ns: int, t2_ns: int) -> bytes:
    """A server reply to ``req`` received at true ``t2_ns``, sent now, serving true + offset."""
    xmt = struct.unpack_from("!Q", req, 40)[0]
    return NtpPacket(
        mode=MODE_SERVER, stratum=1, precision=-20,
        origin_ts=xmt if origin_ok else xmt ^ 0xFFFF,
        receive_ts=ns_to_ntp64(t2_ns + offset_ns),
        transmit_ts=ns_to_ntp64(time.time_ns() + offset_ns),
        root_dispersion=ns_to_short(1000), ref_id=b"SKEW",
    ).encode()  # fmt: skip


def test_spoofed_ntp_replies_never_change_a_clock() -> None:
    """A fake server answers each request with spoofs (+1 h) first: one with a wrong origin
    from the server's own port, one with the right origin from another port. Only genuine
    replies may reach the sync state."""
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    spoofer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    spoofer.bind(("127.0.0.1", 0))
    hour = 3600 * 10**9
    genuine = threading.Event()  # set: after the spoofs, also answer genuinely
    done = threading.Event()
    spoofs_sent = Counter()

    def serve() -> None:
        server.settimeout(0.05)
        while not done.is_set():
            try:
                req, client = server.recvfrom(512)
            except TimeoutError:
                continue
            t2 = time.time_ns()
            server.sendto(_reply(req, False, hour, t2), client)
            spoofer.sendto(_reply(req, True, hour, t2), client)
            spoofs_sent["bad_origin"] += 1
            spoofs_sent["wrong_source"] += 1
            if genuine.is_set():
                time.sleep(0.01)  # the spoofs arrive first
                server.sendto(_reply(req, True, 0, t2), client)

    th = threading.Thread(target=serve)
    th.start()
    clock = NodeClock(Oscillator(offset_ns=-3_000_000, t0_ns=time.time_ns()))
    state = SyncState(clock=clock)
    sources = make_sources(["ntp", "truetime", "clockbound", "skewlab"], state)
    client = NtpClient(*server.getsockname(), clock=clock, timeout_s=0.2)
    poller = NtpPoller(client, state, 1.0, 2)
    try:
        assert poller.poll_once() is None  # only spoofs: no sample
        assert state.latest is None and state.failures == 1
        assert all(s.read(clock.local_ns()).estimate_ns is None for s in sources)
        genuine.set()
        good = poller.poll_once()
        assert good is not None and state.latest is good
        assert abs(good.offset_ns - 3_000_000) < 2_000_000  # the genuine offset, not +1 h
        genuine.clear()
        probe = clock.local_ns()
        before = [s.read(probe) for s in sources]
        assert poller.poll_once() is None  # spoofs again
        assert state.latest is good and len(state.history) == 1
        assert [s.read(probe) for s in sources] == before  # no clock changed
    finally:
        done.set()
        th.join()
        poller.stop()
        server.close()
        spoofer.close()
    # every spoof was seen and counted by reason (the client waited through all of them)
    assert client.rejected["bad_origin"] == spoofs_sent["bad_origin"]
    assert client.rejected["wrong_source"] == spoofs_sent["wrong_source"]
