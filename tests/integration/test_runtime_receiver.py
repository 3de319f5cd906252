"""The worker's receive loop over real loopback sockets, and the commit-wait evaluator."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

from skewlab.clocks.base import Reading, Status
from skewlab.clocks.oscillator import NodeClock, Oscillator
from skewlab.clocks.sources import make_sources
from skewlab.clocks.sync import SyncState
from skewlab.net import wire
from skewlab.node.commit_wait import CommitWaitEvaluator
from skewlab.node.udp import SO_RCVBUFFORCE, _big_buffer
from skewlab.node.worker import Receiver
from skewlab.trace import (
    CW_NO_REFINEMENT,
    PartWriter,
    load_receipts,
    read_parts,
    receipt_schema,
    wire_sentinel_columns,
)

SOURCES = ["system", "ntp"]
KEY = b"test key"


def _setup(tmp_path: Path, total: int, **kw):
    rx_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx_sock.bind(("127.0.0.1", 0))
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    codec = wire.WireCodec(SOURCES, KEY)
    clock = NodeClock(Oscillator(offset_ns=5_000_000, drift_ppb=0, t0_ns=time.time_ns()))
    sources = make_sources(SOURCES, SyncState())  # ntp: no sample, so no value
    writer = PartWriter(tmp_path, "events", receipt_schema(SOURCES), 5,
                        wire_sentinel_columns(SOURCES))  # fmt: skip
    stop = threading.Event()
    rx = Receiver(rx_sock, codec, clock, sources, writer, total, stop, **kw)
    return rx, rx_sock, tx, codec, writer, stop


def _event(codec: wire.WireCodec, eid: int, kind: int = wire.KIND_EVENT) -> bytes:
    readings = ((1, 10 * eid, 10 * eid, 10 * eid), (0, None, None, None))
    return codec.encode(wire.EventPacket(eid, eid, 10 * eid, kind, 8, readings))


def test_dedupe_reorder_rejects_and_accounting(tmp_path: Path) -> None:
    rx, rx_sock, tx, codec, writer, stop = _setup(tmp_path, total=100)
    t = threading.Thread(target=rx.run)
    t.start()
    addr = rx_sock.getsockname()
    order = [*range(10), 3, 12, 11, 12]  # 3 and 12 duplicated, 11 after 12: reordered
    for eid in order:
        tx.sendto(_event(codec, eid), addr)
    bad = {
        "truncated": b"SKLB",
        "bad_magic": b"XXXX" + _event(codec, 1)[4:],
        "bad_sources": _event(wire.WireCodec(["system", "truetime"], KEY), 1),
        "unauthenticated": _event(wire.WireCodec(SOURCES), 1),
        "bad_mac": _event(wire.WireCodec(SOURCES, b"wrong key"), 1),
        "unknown_event": _event(codec, 100),  # ids run 0..total-1
    }
    for data in bad.values():
        tx.sendto(data, addr)
    end = _event(codec, 13, wire.KIND_END)  # the coordinator sent ids 0..12
    tx.sendto(end, addr)
    tx.sendto(end, addr)
    time.sleep(0.3)
    stop.set()
    t.join(timeout=5)
    assert not t.is_alive()
    writer.flush()
    c = rx.counts()
    distinct = set(order)
    assert c["received"] == len(distinct)
    assert c["duplicates"] == len(order) - len(distinct)
    assert c["reordered"] == 1
    for reason in bad:
        assert c[f"rejected_{reason}"] == 1, reason
    assert c["rejected"] == len(bad)
    assert c["end_markers"] == 2 and c["coordinator_sent"] == 13
    assert c["lost"] == 13 - len(distinct)  # id 10 never arrived
    assert c["exit_reason"] == "stop"
    assert c["cost_samples"] == len(distinct) and c["cost_median_ns"] > 0
    table = read_parts(tmp_path, "events")
    ids = table.column("event_id").to_pylist()
    assert sorted(ids) == sorted(distinct)
    rows = {r["event_id"]: r for r in table.to_pylist()}
    r = rows[7]
    assert r["send_local_ns"] == 70 and r["send_system_estimate_ns"] == 70
    assert r["send_ntp_estimate_ns"] is None and r["send_ntp_status"] == 0
    assert r["ntp_estimate_ns"] is None and r["ntp_status"] == int(Status.UNSYNCHRONIZED)
    # one clock read per packet: system equals the local reading, 5 ms ahead of truth
    assert r["system_estimate_ns"] == r["local_ns"]
    assert r["local_ns"] - r["truth_ns"] == 5_000_000
    rx_sock.close()
    tx.close()


def test_lost_control_exits_only_after_events_stop(tmp_path: Path) -> None:
    lost = threading.Event()
    rx, rx_sock, tx, codec, writer, stop = _setup(
        tmp_path, total=1000, control_lost=lost.is_set, idle_exit_s=0.4
    )
    t = threading.Thread(target=rx.run)
    t.start()
    lost.set()
    stop.set()  # what the control link does when its connection drops
    addr = rx_sock.getsockname()
    for eid in range(12):  # events still flow for ~0.6 s: the worker keeps receiving
        tx.sendto(_event(codec, eid), addr)
        time.sleep(0.05)
        assert t.is_alive()
    silent_from = time.monotonic()
    t.join(timeout=5)
    assert not t.is_alive()
    assert time.monotonic() - silent_from >= 0.3
    writer.flush()
    c = rx.counts()
    assert c["received"] == 12 and c["exit_reason"] == "control lost and no events"
    assert read_parts(tmp_path, "events").num_rows == 12
    rx_sock.close()
    tx.close()


class _Refining:
    """A bounded source whose retrospective answer is ±(1000 − 100·k) around the instant."""

    name = "refining"
    bounded = True

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.horizons: list[int | None] = []  # what the pass let it know: receipt + Δ

    def read(self, local_ns: int) -> Reading:
        return Reading(local_ns, local_ns - 1000, local_ns + 1000, Status.SYNCHRONIZED)

    def reading_at(self, past_local_ns: int, known_until: int | None = None) -> Reading:
        self.calls.append(past_local_ns)
        self.horizons.append(known_until)
        return Reading(past_local_ns, past_local_ns - 100, past_local_ns + 100, Status.SYNCHRONIZED)


class _BoundedPlain:
    name = "plain"
    bounded = True

    def read(self, local_ns: int) -> Reading:
        return Reading(local_ns, local_ns - 5, local_ns + 5, Status.FREE_RUNNING)


class _Point:
    name = "point"
    bounded = False

    def read(self, local_ns: int) -> Reading:
        return Reading.point(local_ns, Status.FREE_RUNNING)


def test_commit_wait_evaluates_at_t_plus_delta(tmp_path: Path) -> None:
    now = [0]
    ref = _Refining()
    cw = CommitWaitEvaluator([_Point(), ref, _BoundedPlain()], [10, 20], lambda: now[0], tmp_path)
    assert cw.names == ["refining", "plain"]  # the point source has nothing to re-evaluate
    ms = 1_000_000
    for eid, local in enumerate([0, 3 * ms, 6 * ms]):
        cw.push(eid, local)
    now[0] = 9 * ms
    assert cw.run_due() == 0  # nothing is due before T+Δ
    now[0] = 13 * ms
    assert cw.run_due() == 2  # receipts at 0 and 3 ms are due at Δ = 10 ms
    now[0] = 25 * ms
    assert cw.run_due() == 1 + 2  # the last one at Δ = 10 ms; the first two at 20 ms
    summary = cw.stop()  # the receipt at 6 ms is not due at 20 ms until 26 ms
    assert summary["commit_wait_evaluated"] == {"10": 3, "20": 2}
    assert summary["commit_wait_not_done_at_stop"] == {"10": 0, "20": 1}
    assert ref.calls.count(0) == 2 and ref.calls.count(6 * ms) == 1
    # each evaluation knows only what the node knew at receipt + Δ, however late it runs
    assert sorted(zip(ref.calls, ref.horizons, strict=True)) == [
        (0, 10 * ms),
        (0, 20 * ms),
        (3 * ms, 13 * ms),
        (3 * ms, 23 * ms),
        (6 * ms, 16 * ms),
    ]
    # joined beside receipts by event id (receipts written by a plain writer here)
    w = PartWriter(tmp_path, "events", receipt_schema([]), 10)
    for eid, local in enumerate([0, 3 * ms, 6 * ms]):
        w.append((eid, eid, local, local, local))
    w.flush()
    rows = load_receipts(tmp_path, []).to_pylist()
    assert rows[0]["refining_cw10_earliest_ns"] == -100
    assert rows[0]["cw10_age_ns"] == 13 * ms  # evaluated when the clock read 13 ms
    assert rows[1]["refining_cw20_latest_ns"] == 3 * ms + 100
    assert rows[1]["cw20_age_ns"] == 22 * ms
    assert rows[2]["refining_cw10_status"] == int(Status.SYNCHRONIZED)
    assert rows[2]["refining_cw20_status"] is None  # never evaluated: null, not invented
    assert rows[0]["plain_cw10_status"] == CW_NO_REFINEMENT
    assert rows[0]["plain_cw10_earliest_ns"] is None


def test_commit_wait_poll_evaluates_what_was_due_at_its_start(tmp_path: Path) -> None:
    """One pass evaluates the receipts due when it began, in one batch: receipts that fall due
    while it works wait for the next poll (chasing them ran many tiny batches per poll)."""
    ms = 1_000_000
    clock = iter(range(5 * ms, 1000 * ms, ms))  # every read of the clock is 1 ms later
    ref = _Refining()
    cw = CommitWaitEvaluator([ref], [1], lambda: next(clock), tmp_path)
    for eid in range(10):
        cw.push(eid, eid * ms)  # receipts at 0..9 ms, Δ = 1 ms
    assert cw.run_due() == 5  # due at 5 ms: the receipts at 0..4 ms
    assert cw.batches == 1 and ref.calls == [0, ms, 2 * ms, 3 * ms, 4 * ms]
    # the clock read 6 ms for the ages; the next poll starts at 7 ms: the receipts at 5, 6 ms
    assert cw.run_due() == 2 and cw.batches == 2
    summary = cw.stop()  # its pass starts at 9 ms: 7 and 8 ms; the one at 9 ms is not due
    assert summary["commit_wait_evaluated"] == {"1": 9}
    assert summary["commit_wait_not_done_at_stop"] == {"1": 1}
    assert summary["commit_wait_batches"] == 3


def test_batched_readings_equal_one_read_at_the_instant(tmp_path: Path) -> None:
    """The receive loop evaluates its receipts' readings on arrays, in batches, after the
    fact; each row must equal what one ``read`` at the receipt's instant gives (a disciplined
    host whose servo and sources have taken a realistic stream of samples; a step under way
    so the gaps matter), for every default source."""
    from benchmarks.clock_read import NAMES, NODE, _moved

    from skewlab.clocks.node import node_sync
    from skewlab.sim.node import SOLO, T0_NS, NodeSim, solo_spec

    s_ns = 1_000_000_000
    now = time.time_ns()
    start = now - 300 * s_ns
    faults = [{"kind": "clock_step", "node": SOLO, "at_s": 299.5, "delta_ms": 7}]
    spec = solo_spec(NODE, sources=NAMES, ntp={"poll_s": 16}, faults=faults)
    sim = NodeSim(spec, SOLO, T0_NS)
    sim.run_until(T0_NS + 290 * s_ns)
    clock, state = node_sync(spec, SOLO, start)
    sources = make_sources(NAMES, state)
    for smp in sim.state.history:
        state.add(_moved(smp, start - T0_NS))
    rx_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx_sock.bind(("127.0.0.1", 0))
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    codec = wire.WireCodec(NAMES, KEY)
    writer = PartWriter(tmp_path, "events", receipt_schema(NAMES), 100,
                        wire_sentinel_columns(NAMES))  # fmt: skip
    stop = threading.Event()
    rx = Receiver(rx_sock, codec, clock, sources, writer, 400, stop)
    t = threading.Thread(target=rx.run)
    t.start()
    flat = [2, 5, 4, 6] + [0, wire.NO_VALUE, wire.NO_VALUE, wire.NO_VALUE] * (len(NAMES) - 1)
    for eid in range(300):
        tx.sendto(codec.encode_flat(wire.KIND_EVENT, eid, eid, 10 * eid, flat),
                  rx_sock.getsockname())  # fmt: skip
        if eid % 50 == 0:
            time.sleep(0.03)  # some batches end on the delay, some on the size
    time.sleep(0.3)
    stop.set()
    t.join(timeout=10)
    writer.flush()
    rows = read_parts(tmp_path, "events").to_pylist()
    assert len(rows) == 300 and rx.batches >= 2
    assert [r["send_system_estimate_ns"] for r in rows[:2]] == [5, 5]
    assert rows[0]["send_ntp_estimate_ns"] is None and rows[0]["send_ntp_status"] == 0
    osc = clock.oscillator
    for r in rows:
        truth = r["truth_ns"]
        local = osc.local_at(truth)
        assert r["local_ns"] == local
        for src in sources:
            want = src.read(local, truth)
            got = tuple(r[f"{src.name}_{c}"] for c in
                        ("estimate_ns", "earliest_ns", "latest_ns", "status"))  # fmt: skip
            assert got == (want[0], want[1], want[2], int(want[3])), (src.name, truth)
    rx_sock.close()
    tx.close()


def test_receipts_carry_the_kernel_arrival_instant(tmp_path: Path) -> None:
    """The receipt's true instant is the kernel's arrival stamp, not the moment the loop got to
    the datagram: every receipt's truth_ns lies inside its own send call (loopback delivers
    inside ``send``), though the datagrams wait in the socket while the loop sleeps between
    drains of the busy stream and while it is not running at all. (Stamped when the receive
    returns, the first ones would be ≥ 0.2 s late and the check fails.)"""
    total = 1000
    rx, rx_sock, tx, codec, writer, stop = _setup(tmp_path, total=total)
    assert rx.kernel_stamps
    _big_buffer(rx_sock, socket.SO_RCVBUF, SO_RCVBUFFORCE)
    time.sleep(0.05)  # the kernel turns arrival stamping on through deferred work (stamps.enable)
    addr = rx_sock.getsockname()
    spans: dict[int, tuple[int, int]] = {}

    def send(first: int, last: int) -> None:
        for eid in range(first, last):
            data = _event(codec, eid)
            t0 = time.time_ns()
            tx.sendto(data, addr)
            spans[eid] = (t0, time.time_ns())
            time.sleep(0)  # lets the loop's thread have the interpreter

    send(0, 100)  # queued before the loop runs
    time.sleep(0.2)
    t = threading.Thread(target=rx.run)
    t.start()
    send(100, total)  # a busy stream: datagrams µs apart
    time.sleep(0.2)
    stop.set()
    t.join(timeout=5)
    writer.flush()
    c = rx.counts()
    assert c["received"] == total and c["lost"] is None
    assert c["receipt_stamps"] == "kernel" and c["receipts_user_stamped"] == 0
    assert c["drain_sleeps"] > 0
    table = read_parts(tmp_path, "events")
    truth = dict(zip(table.column("event_id").to_pylist(), table.column("truth_ns").to_pylist(),
                     strict=True))  # fmt: skip
    assert len(truth) == total
    outside = [e for e, (a, b) in spans.items() if not a <= truth[e] <= b]
    assert not outside, f"{len(outside)} receipts stamped outside their send: {outside[:5]}"
    rx_sock.close()
    tx.close()


def test_receipts_are_stamped_on_return_without_the_real_host_clock(tmp_path: Path) -> None:
    """A node clock on another host clock than the real one (virtual time, a test's own) cannot
    use the kernel's realtime stamp: the loop reads its host clock when the receive returns,
    and says so (``receipt_stamps`` "user")."""

    class OwnHost:  # the real time, but not the HostClock: the kernel stamp does not apply
        now_ns = staticmethod(time.time_ns)

    rx, rx_sock, tx, codec, writer, stop = _setup(tmp_path, total=10)
    osc = rx.clock.oscillator
    rx = Receiver(rx_sock, codec, NodeClock(osc, OwnHost()), rx.sources, writer, 10, stop)
    assert not rx.kernel_stamps
    addr = rx_sock.getsockname()
    tx.sendto(_event(codec, 0), addr)
    sent = time.time_ns()
    time.sleep(0.2)
    t = threading.Thread(target=rx.run)
    t.start()
    time.sleep(0.2)
    stop.set()
    t.join(timeout=5)
    writer.flush()
    c = rx.counts()
    assert c["received"] == 1 and c["receipt_stamps"] == "user"
    assert "receipts_user_stamped" not in c
    (truth,) = read_parts(tmp_path, "events").column("truth_ns").to_pylist()
    assert truth >= sent + 150_000_000  # read when the loop took the datagram
    rx_sock.close()
    tx.close()
