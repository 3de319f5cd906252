"""The nemesis: fault specs and their validation, clock faults as oscillator faults, NTP and
link faults applied on schedule and recorded, and the multi-server poller's selection."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from skewlab.clocks.oscillator import ClockFault
from skewlab.clocks.sync import SyncState
from skewlab.nemesis.link import LinkNemesis
from skewlab.nemesis.ntp import NtpNemesis
from skewlab.nemesis.record import FaultRecorder, load_faults
from skewlab.nemesis.schedule import clock_faults
from skewlab.node.sync import NtpPoller
from skewlab.ntp.client import NtpClient, NtpError, compute_sample
from skewlab.ntp.server import NtpServer
from skewlab.spec import SpecError, from_dict


def _spec(faults: list[dict], **kw):
    return from_dict({"faults": faults, **kw})


def test_clock_faults_become_oscillator_faults() -> None:
    t0 = 10**18
    spec = _spec([
        {"kind": "clock_step", "at_s": 1.5, "node": "B", "delta_ms": -50},
        {"kind": "clock_strobe", "at_s": 2, "node": "B", "delta_ms": 20, "period_ms": 100,
         "duration_s": 0.5},
        {"kind": "clock_rate", "at_s": 3, "node": "C", "delta_ppm": 12.5},
    ])  # fmt: skip
    assert clock_faults(spec, "B", t0) == (
        ClockFault("step", t0 + 1_500_000_000, delta_ns=-50_000_000),
        ClockFault("strobe", t0 + 2_000_000_000, delta_ns=20_000_000, period_ns=100_000_000,
                   duration_ns=500_000_000),
    )  # fmt: skip
    assert clock_faults(spec, "C", t0) == (ClockFault("freq", t0 + 3 * 10**9, delta_ppb=12_500),)
    assert clock_faults(spec, "coordinator", t0) == ()
    # a dumped spec (every default written out) loads back to the same faults
    assert from_dict(spec.model_dump(mode="json")).faults == spec.faults


@pytest.mark.parametrize(
    ("faults", "extra", "message"),
    [
        ([{"kind": "clock_step", "at_s": 1, "node": "Z", "delta_ms": 5}], {},
         "faults[0].node: no node named 'Z'"),
        ([{"kind": "clock_step", "at_s": 1, "node": "B"}], {},
         "faults[0]: kind 'clock_step' needs delta_ms"),
        ([{"kind": "ntp_outage", "at_s": 1, "delta_ms": 3}], {},
         "faults[0]: kind 'ntp_outage' does not take delta_ms"),
        ([{"kind": "ntp_falseticker", "at_s": 1, "server": 3, "offset_ms": 9}],
         {"ntp": {"servers": 3}}, "faults[0].server: 3 but ntp.servers = 3"),
        ([{"kind": "link_loss", "at_s": 1, "path": "coordinator~B", "duration_s": 1}], {},
         "faults[0].path: 'coordinator~B' is not emulated"),
        ([{"kind": "link_loss", "at_s": 1, "path": "B~C", "duration_s": 1}], {},
         "faults[0].path: unknown path 'B~C'"),
        ([{"kind": "ntp_outage", "at_s": -1}], {}, "faults[0].at_s: Input should be greater"),
        ([{"kind": "ntp_outage", "at_s": 1, "typo": 1}], {}, "faults[0].typo: Extra inputs"),
        ([{"kind": "clock_jump", "at_s": 1}], {}, "faults[0].kind: Input should be"),
    ],
)  # fmt: skip
def test_bad_faults_name_the_key(faults: list, extra: dict, message: str) -> None:
    with pytest.raises(SpecError) as e:
        _spec(faults, **extra)
    assert message in str(e.value)


def _query(server: NtpServer) -> int | str:
    """One exchange against ``server``: the measured offset (ns) or the failure reason."""
    with NtpClient(*server.address, timeout_s=0.3) as c:
        try:
            return c.exchange().offset_ns
        except NtpError as e:
            return e.reason


class _GatedClock:
    """A true-time clock the test moves: ``wait_until`` blocks until the test has moved time
    to the instant (or stop is set), so the nemesis thread runs on the test's schedule."""

    def __init__(self, t_ns: int) -> None:
        self._now = t_ns
        self._moved = threading.Condition()

    def now_ns(self) -> int:
        return self._now

    def move_to(self, t_ns: int) -> None:
        with self._moved:
            self._now = t_ns
            self._moved.notify_all()

    def wait_until(self, t_ns: int, stop: threading.Event) -> bool:
        with self._moved:
            while self._now < t_ns and not stop.is_set():
                self._moved.wait(0.01)
        return not stop.is_set()


def _settle(nem: NtpNemesis, applied: int) -> None:
    """Wait (a bounded few seconds) until the nemesis thread has made ``applied`` transitions."""
    deadline = time.monotonic() + 5
    while nem.applied + len(nem.errors) < applied and time.monotonic() < deadline:
        time.sleep(0.005)


def test_ntp_faults_applied_on_schedule_and_recorded(tmp_path: Path) -> None:
    """The NTP nemesis's own thread, on a clock the test moves: nothing before the start
    instant, every start at it, every end at the end instant, each recorded at its instant."""
    t0 = 1_700_000_000 * 1_000_000_000
    clock = _GatedClock(t0 - 1_000_000)
    spec = _spec(
        [
            {"kind": "ntp_falseticker", "at_s": 0, "server": 1, "offset_ms": 80, "duration_s": 1.5},
            {"kind": "ntp_outage", "at_s": 0, "server": 0, "how": "stop", "duration_s": 1.5},
            {"kind": "ntp_outage", "at_s": 0, "server": 2, "how": "drop", "duration_s": 1.5},
        ],
        ntp={"servers": 3},
    )
    servers = [NtpServer().start() for _ in range(3)]
    ports = [s.port for s in servers]
    rec = FaultRecorder(tmp_path, "ntp-server", clock=clock)
    nem = NtpNemesis(spec.faults, servers, t0, rec, lambda k: NtpServer(port=ports[k]).start(),
                     clock=clock)  # fmt: skip
    nem.start()
    try:
        before = [_query(s) for s in servers]  # 1 ms before the faults: all honest
        assert nem.applied == 0
        clock.move_to(t0)
        _settle(nem, 3)
        closed = servers[0].sock.fileno() == -1
        during = [_query(s) for s in servers]  # 0.6 s at most: two time out
        assert nem.applied == 3  # the ends wait for their instant
        clock.move_to(t0 + 1_500_000_000)
        _settle(nem, 6)
        after = [_query(s) for s in servers]
    finally:
        nem.stop()
        for s in servers:
            s.stop()
    assert all(isinstance(x, int) and abs(x) < 5_000_000 for x in before), before
    assert closed and during[0] in ("timeout", "unreachable")  # socket closed: no answer
    assert isinstance(during[1], int) and abs(during[1] - 80_000_000) < 5_000_000
    assert during[2] == "timeout"  # dropped
    assert all(isinstance(x, int) and abs(x) < 5_000_000 for x in after), after
    assert servers[0].port == ports[0]  # rebound on the same port
    rows = load_faults(tmp_path).to_pylist()
    assert Counter((r["fault"], r["phase"]) for r in rows) == {
        (i, p): 1 for i in range(3) for p in ("start", "end")
    }
    assert {r["target"] for r in rows} == {"ntp-server", "ntp-server-1", "ntp-server-2"}
    for r in rows:  # recorded at the instant the clock showed when each was applied
        assert r["truth_ns"] == t0 + (1_500_000_000 if r["phase"] == "end" else 0)
    assert nem.counts() == {"nemesis_applied": 6, "nemesis_errors": []}


class _Model:
    def decide(self, size: int, mono_in: int) -> list:
        return [(1, 1, 0, False)]


class _FakeLink:
    def __init__(self) -> None:
        self.models = {0: _Model(), 1: _Model()}


class _FakeNet:
    def __init__(self) -> None:
        self.hub = type("Hub", (), {"links": {"coordinator~B": _FakeLink()}})()


def test_link_loss_blacks_out_both_directions(tmp_path: Path) -> None:
    net = _FakeNet()
    spec = _spec(
        [{"kind": "link_loss", "at_s": 0, "path": "coordinator~B", "duration_s": 0.3}],
        network={"profile": "loopback", "links": {"coordinator~B": {"profile": "lan"}}},
    )
    t0 = time.time_ns()
    nem = LinkNemesis(spec.faults, net, t0, FaultRecorder(tmp_path, "launcher")).start()
    link = net.hub.links["coordinator~B"]
    time.sleep(0.15)
    assert all(m.decide(100, 0) == [] for m in link.models.values())
    time.sleep(0.35)
    assert all(m.decide(100, 0) == [(1, 1, 0, False)] for m in link.models.values())
    nem.stop()
    assert [r["phase"] for r in load_faults(tmp_path).to_pylist()] == ["start", "end"]


class _FakeClient:
    """Answers exchanges with a fixed offset (or fails) — a stand-in NTP transport."""

    timeout_s = 0.1

    def __init__(self, name: str, offset_ns: int | None) -> None:
        self.name = name
        self.offset = offset_ns

    def exchange(self):
        if self.offset is None:
            raise NtpError("timeout", self.name)
        t1 = 10**18
        return compute_sample(self.name, t1, t1 + 500 + self.offset, t1 + 600 + self.offset,
                              t1 + 1_000)  # fmt: skip

    def close(self) -> None:
        pass


def test_poller_rejects_the_falseticker_and_uses_a_truechimer() -> None:
    state = SyncState()
    clients = [_FakeClient("a", 1_000), _FakeClient("b", 1_200), _FakeClient("c", 90_000_000)]
    p = NtpPoller(clients, state, 1.0, 1)  # type: ignore[arg-type]
    s = p.poll_once()
    assert s is not None and s.server in ("a", "b") and state.latest is s
    c = p.counts()["ntp_selection"]
    assert c["c"] == {"falseticker:outside_intersection": 1}
    assert c["a"] == {"selected": 1} and c["b"] == {"selected": 1}
    # one truechimer left with the liar: no majority, so no sample at all (nothing invented)
    clients[1].offset = None
    assert p.poll_once() is None and state.latest is s and state.failures == 1
    assert p.counts()["ntp_selection"]["c"]["falseticker:no_majority"] == 1


def test_poller_places_a_sample_with_the_gap_at_its_t4() -> None:
    """A step that lands between T4 and the moment the sample is stored must not be taken as
    the sample's gap (it would misplace the sample by the step on the monotonic timescale)."""
    from skewlab.clocks.oscillator import NodeClock, Oscillator
    from skewlab.timebase import VirtualClock

    t4_truth = 10**18
    host = VirtualClock(t4_truth)
    step = ClockFault("step", t4_truth + 1_000, delta_ns=50_000_000)
    clock = NodeClock(Oscillator(faults=(step,)), host)

    class _Client(_FakeClient):
        def exchange(self):
            t1 = t4_truth - 2_000
            s = compute_sample("a", t1, t1 + 1_000, t1 + 1_100, t4_truth, truth_t1_ns=t1,
                               truth_t4_ns=t4_truth)  # fmt: skip
            host.advance(5_000)  # the step happens before the poller stores the sample
            return s

    state = SyncState(clock=clock)
    NtpPoller(_Client("a", 0), state, 1.0, 1).poll_once()  # type: ignore[arg-type]
    assert clock.gaps_ns() == (50_000_000, 50_000_000)  # now: stepped
    assert (state.latest_gap_ns, state.latest_step_gap_ns) == (0, 0)  # at T4: not yet
    assert state.latest_mono_ns == t4_truth


def test_faults_already_due_are_in_place_when_start_returns(tmp_path: Path) -> None:
    """A fault due at (or before) the nemesis's start is applied in ``start()`` itself, so the
    NTP server node reports ready only with it in place: with the local launcher's node
    starter, workers poll within ~0.1 s of that readiness, and an outage at ``at_s = 0`` was
    still being applied by the thread when their first poll was answered. A later fault still
    waits for its instant, on the thread."""
    t0 = 1_700_000_000 * 1_000_000_000
    clock = _GatedClock(t0 + 2_000_000)  # the node started 2 ms after the run's t0
    spec = _spec(
        [
            {"kind": "ntp_outage", "at_s": 0, "server": 0, "how": "drop", "duration_s": 1.0},
            {"kind": "ntp_falseticker", "at_s": 0.5, "server": 1, "offset_ms": 80},
        ],
        ntp={"servers": 2},
    )
    servers = [NtpServer().start() for _ in range(2)]
    applied_by: list[str] = []

    class Watched(NtpNemesis):
        def transition(self, f, phase):  # type: ignore[no-untyped-def]
            applied_by.append(threading.current_thread().name)
            return super().transition(f, phase)

    nem = Watched(spec.faults, servers, t0, FaultRecorder(tmp_path, "ntp-server", clock=clock),
                  lambda k: servers[k], clock=clock)  # fmt: skip
    try:
        nem.start()
        assert nem.applied == 1 and servers[0].drop_fraction == 1.0
        assert applied_by == [threading.current_thread().name]  # in start(), not on the thread
        assert servers[1].offset_ns == 0  # not due yet
        clock.move_to(t0 + 500_000_000)
        _settle(nem, 2)
        assert servers[1].offset_ns == 80_000_000
        assert applied_by[1] == "ntp-nemesis"
    finally:
        nem.stop()
        for s in servers:
            s.stop()
    rows = load_faults(tmp_path).to_pylist()
    assert [(r["fault"], r["phase"], r["truth_ns"]) for r in rows] == [
        (0, "start", t0 + 2_000_000), (1, "start", t0 + 500_000_000)]  # fmt: skip
