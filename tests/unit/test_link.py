"""Link emulator: delays, loss, reordering, duplication, rate limit, replies, trace summary."""

from __future__ import annotations

import json
import math
import socket
import threading
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from skewlab.analysis.links import format_summary, reorder_rate, summarize_link
from skewlab.net.distributions import NS_PER_MS, BernoulliLoss, ConstantDelay, NormalDelay
from skewlab.net.link import Link, LinkHub, requested_figures
from skewlab.net.profiles import PROFILES, DirectionSpec, ResolvedLink
from skewlab.trace import BACK, DELIVERED, FORWARD, LINK_SCHEMA, LOST


class Sink:
    """A loopback UDP endpoint that counts datagrams and can echo them."""

    def __init__(self, echo: bool = False) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.echo = echo
        self.got: list[bytes] = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    @property
    def addr(self) -> tuple[str, int]:
        return self.sock.getsockname()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                d, a = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            self.got.append(d)
            if self.echo:
                self.sock.sendto(d, a)

    def close(self) -> None:
        self._stop.set()
        self._t.join()
        self.sock.close()


def _link(fwd: DirectionSpec, back: DirectionSpec | None = None) -> ResolvedLink:
    return ResolvedLink(forward=fwd, back=back or DirectionSpec())


def _blast(addr: tuple[str, int], n: int, gap_s: float = 0.0, size: int = 32) -> socket.socket:
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i in range(n):
        c.sendto(i.to_bytes(4, "big") + bytes(size - 4), addr)
        if gap_s:
            time.sleep(gap_s)
        elif i % 100 == 99:
            time.sleep(0.002)  # let the receivers keep up: socket buffers are finite
    return c


def _run(spec: ResolvedLink, n: int, gap_s: float = 0.0, echo: bool = False, seed: int = 5,
         size: int = 32) -> tuple[Link, Sink, socket.socket]:  # fmt: skip
    sink = Sink(echo)
    hub = LinkHub(seed=seed).start()
    try:
        addr = hub.add_link("a~b", spec, sink.addr)
        c = _blast(addr, n, gap_s, size)
        hub.drain(5)
        time.sleep(0.05)
    finally:
        hub.stop()
        sink.close()
    return hub.links["a~b"], sink, c


def test_constant_delay_both_ways_and_replies_come_from_the_relay() -> None:
    spec = _link(
        DirectionSpec(delay=ConstantDelay(delay_ms=4.0)),
        DirectionSpec(delay=ConstantDelay(delay_ms=1.0)),
    )
    sink = Sink(echo=True)
    with LinkHub(seed=1) as hub:
        addr = hub.add_link("a~b", spec, sink.addr)
        c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        c.settimeout(2)
        for i in range(20):
            c.sendto(bytes([i]) * 8, addr)
            data, src = c.recvfrom(100)
            assert data == bytes([i]) * 8
            assert src == addr  # the client sees the reply from the address it sent to
        c.close()
    sink.close()
    t = hub.links["a~b"].table()
    s = summarize_link(t)
    for name, want_ms in (("forward", 4.0), ("back", 1.0)):
        a = s[name]["achieved"]
        assert a["delivered"] == 20 and a["lost"] == 0
        assert a["min_ms"] >= want_ms  # never early
        assert a["lateness_mean_ms"] >= 0
        # every datagram was scheduled for exactly the constant delay, and whatever it arrived
        # later than that is reported as the relay's lateness. How small that lateness is
        # depends on the host's load: benchmarks/link_accuracy.py measures it (a bound here
        # failed at 1.13 ms on a loaded 2-core host).
        d = t.filter(pc.equal(t.column("direction"), FORWARD if name == "forward" else BACK))
        assert set(d.column("scheduled_delay_ns").to_pylist()) == {int(want_ms * NS_PER_MS)}
        assert a["mean_ms"] - a["lateness_mean_ms"] == pytest.approx(want_ms, abs=1e-6)


def test_loss_rate_matches() -> None:
    p, n = 0.2, 2000
    link, sink, _ = _run(_link(DirectionSpec(loss=BernoulliLoss(rate=p))), n)
    a = summarize_link(link.table())["forward"]["achieved"]
    assert a["packets_in"] == n
    assert a["lost"] + a["delivered"] == n
    assert len(sink.got) == a["delivered"]  # the trace says exactly what arrived
    assert abs(a["loss_rate"] - p) < 5 * math.sqrt(p * (1 - p) / n)


def test_reordering_rate_matches_hold_back_probability() -> None:
    p, n = 0.1, 1500
    spec = _link(DirectionSpec(delay=ConstantDelay(delay_ms=1.0), reorder=p, reorder_extra_ms=20.0))
    link, sink, _ = _run(spec, n)
    t = link.table()
    held = np.asarray(t.column("held"))
    assert abs(held.mean() - p) < 5 * math.sqrt(p * (1 - p) / n)
    a = summarize_link(t)["forward"]["achieved"]
    # every held packet is overtaken by a later unheld one: reordered deliveries = held ones
    assert a["reordered"] == int(held.sum())
    assert abs(a["reorder_rate"] - p) < 5 * math.sqrt(p * (1 - p) / n)
    # the receiver saw the same order as the relay's trace
    order = [int.from_bytes(d[:4], "big") for d in sink.got]
    assert reorder_rate(np.array(order))[0] == a["reordered"]


def test_duplication_rate_matches() -> None:
    p, n = 0.1, 1500
    link, sink, _ = _run(_link(DirectionSpec(duplicate=p)), n)
    a = summarize_link(link.table())["forward"]["achieved"]
    assert a["packets_in"] == n
    assert len(sink.got) == n + a["duplicates"]
    assert abs(a["duplicates"] / n - p) < 5 * math.sqrt(p * (1 - p) / n)


def test_rate_limit_spaces_packets_by_serialization_time() -> None:
    rate_mbps, size, n = 2.0, 1000, 20
    link, sink, _ = _run(_link(DirectionSpec(rate_mbps=rate_mbps)), n, size=size)
    t = link.table()
    out = np.sort(np.asarray(t.column("truth_out_ns")))
    tx_ns = size * 8 * 1000 / rate_mbps  # bits / (Mbit/s) in ns
    span = out[-1] - out[0]
    assert span >= (n - 1) * tx_ns * 0.95  # never faster than the line rate
    assert len(sink.got) == n


def test_jitter_statistics_through_the_relay() -> None:
    spec = _link(DirectionSpec(delay=NormalDelay(mean_ms=3.0, std_ms=0.5)))
    link, _, _ = _run(spec, 800, gap_s=0.0005)
    t = link.table()
    sampled = np.asarray(t.column("sampled_delay_ns"), dtype=float)
    assert abs(sampled.mean() - 3 * NS_PER_MS) < 5 * 0.5 * NS_PER_MS / math.sqrt(len(sampled))
    a = summarize_link(t)["forward"]["achieved"]
    # achieved = sampled + the relay's lateness; both measured from the same trace
    achieved = (np.asarray(t.column("truth_out_ns")) - np.asarray(t.column("truth_in_ns"))).mean()
    lateness = achieved - np.asarray(t.column("scheduled_delay_ns")).mean()
    assert a["lateness_mean_ms"] == pytest.approx(lateness / NS_PER_MS, abs=1e-6)
    assert a["mean_ms"] == pytest.approx(achieved / NS_PER_MS, abs=1e-6)


def test_same_seed_same_decisions() -> None:
    spec = _link(DirectionSpec(delay=NormalDelay(mean_ms=1.0, std_ms=0.3),
                               loss=BernoulliLoss(rate=0.3)))  # fmt: skip
    a = _run(spec, 200, seed=9)[0].table()
    b = _run(spec, 200, seed=9)[0].table()
    for col in ("fate", "sampled_delay_ns"):
        assert a.column(col).to_pylist() == b.column(col).to_pylist()


def test_summary_known_answer() -> None:
    """A hand-made trace: 3 forward packets (one lost), 1 back packet."""
    spec = ResolvedLink(
        forward=DirectionSpec(delay=ConstantDelay(delay_ms=2.0)), back=DirectionSpec()
    )
    link = Link("x~y", ("127.0.0.1", 9), spec, socket.socket(), {}, 1)
    link.listen.close()
    tr = link.trace
    ms = NS_PER_MS
    r0 = tr.add(FORWARD, 0, 0, 10, 100 * ms, 2 * ms, 2 * ms, False, DELIVERED)
    tr.add(FORWARD, 1, 0, 10, 101 * ms, None, None, False, LOST)
    r2 = tr.add(FORWARD, 2, 0, 10, 102 * ms, 2 * ms, 2 * ms, False, DELIVERED)
    r3 = tr.add(BACK, 0, 0, 10, 110 * ms, 0, 0, False, DELIVERED)
    for row, out in ((r0, 103 * ms), (r2, 104 * ms), (r3, 110 * ms + 50_000)):
        tr.cols["truth_out_ns"][row] = out
    t = link.table()
    assert t.schema.equals(LINK_SCHEMA, check_metadata=False)
    s = summarize_link(t)
    f = s["forward"]["achieved"]
    # delays: 103 − 100 = 3 ms and 104 − 102 = 2 ms
    assert f["packets_in"] == 3 and f["delivered"] == 2 and f["lost"] == 1
    assert f["loss_rate"] == pytest.approx(1 / 3)
    assert f["mean_ms"] == pytest.approx((3 + 2) / 2)
    assert f["mean_error_ms"] == pytest.approx((3 + 2) / 2 - 2.0)
    assert f["max_ms"] == 3.0 and f["min_ms"] == 2.0
    assert f["lateness_mean_ms"] == pytest.approx(((3 - 2) + (2 - 2)) / 2)
    assert f["reordered"] == 0
    b = s["back"]["achieved"]
    assert b["mean_ms"] == pytest.approx(0.05)
    assert s["forward"]["requested"]["mean_ms"] == 2.0
    assert s["back"]["requested"]["mean_ms"] == 0.0
    assert s["forward"]["requested"] == requested_figures(spec.forward)  # recorded by the writer


def test_summary_of_a_version_1_trace_reports_unrecorded_requested_figures_as_null() -> None:
    """Link traces before version 2 recorded the settings but not the requested figures; the
    analysis (which imports no network code) reports those as null and still summarizes."""
    spec = ResolvedLink(
        forward=DirectionSpec(delay=ConstantDelay(delay_ms=2.0)), back=DirectionSpec()
    )
    link = Link("x~y", ("127.0.0.1", 9), spec, socket.socket(), {}, 1)
    link.listen.close()
    r0 = link.trace.add(FORWARD, 0, 0, 10, 100 * NS_PER_MS, 0, 2 * NS_PER_MS, False, DELIVERED)
    link.trace.cols["truth_out_ns"][r0] = 103 * NS_PER_MS
    meta = json.loads(link.metadata()[b"skewlab.link"])
    del meta["requested"]
    v1 = link.table().replace_schema_metadata(
        {b"skewlab.trace_version": b"1", b"skewlab.link": json.dumps(meta).encode()}
    )
    s = summarize_link(v1)
    req, ach = s["forward"]["requested"], s["forward"]["achieved"]
    assert req["dist"] == "constant" and req["reorder"] == 0.0
    assert req["mean_ms"] is None and req["p99_ms"] is None and req["loss_rate"] is None
    assert ach["mean_ms"] == 3.0 and ach["mean_error_ms"] is None
    assert "—" in format_summary({"x~y": s})  # the table prints it as unavailable


def test_reorder_rate_counts_late_deliveries() -> None:
    # delivered order 0 2 1 3 5 4: 1 and 4 arrive after a later-sent packet
    assert reorder_rate(np.array([0, 2, 1, 3, 5, 4])) == (2, 2 / 6)
    assert reorder_rate(np.array([], dtype=np.int64)) == (0, None)


def test_profiles_are_documented_shapes() -> None:
    assert PROFILES["loopback"] is None
    wan = PROFILES["wan"]
    assert wan is not None
    # wan is asymmetric: forward slower than back
    assert wan.forward.delay.mean_ns() > wan.back.delay.mean_ns()
    lan = PROFILES["lan"]
    assert lan is not None and lan.forward.delay.mean_ns() == pytest.approx(0.1 * NS_PER_MS)


def test_empty_table_is_valid() -> None:
    t = LINK_SCHEMA.empty_table()
    assert isinstance(t, pa.Table)
