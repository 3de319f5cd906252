"""One engine for real and virtual time: the pieces a node process and the simulator share.

Each test runs a node's own object (servo, poller loop, fault windows, commit-wait pass) in
virtual time and checks it against its scalar / real-time form."""

from __future__ import annotations

import threading

import numpy as np

from skewlab.clocks.discipline import Discipline
from skewlab.clocks.node import node_oscillator, node_sync
from skewlab.clocks.sources import make_sources
from skewlab.nemesis.timed import FOREVER_NS, in_force, transitions, windows
from skewlab.node.commit_wait import CommitWaitEvaluator
from skewlab.node.sync import NtpPoller
from skewlab.ntp.client import compute_sample
from skewlab.spec import from_dict
from skewlab.timebase import VirtualClock
from skewlab.trace import commit_wait_age_column, read_parts

S = 1_000_000_000
MS = 1_000_000
T0 = 1_700_000_000 * S


def test_discipline_correction_on_arrays_equals_scalar_bit_for_bit() -> None:
    d = Discipline()
    rng = np.random.default_rng(5)
    m = T0
    for _ in range(40):
        m += int(rng.integers(1, 20 * S))
        d.update(int(rng.integers(-3 * MS, 3 * MS)), m)
    q = np.sort(T0 - 5 * S + rng.integers(0, m - T0 + 30 * S, 4000))
    got = d.correction_at_array(q)
    assert [int(x) for x in got] == [d.correction_at(int(x)) for x in q]


def _disciplined_spec() -> object:
    return from_dict({"nodes": [{"name": "c", "role": "coordinator"},
                                {"name": "B", "offset_ms": 5, "drift_ppm": 30,
                                 "discipline": "disciplined", "wander_ppb": 1.0},
                                {"name": "C"}],
                      "faults": [{"kind": "clock_step", "node": "B", "at_s": 20,
                                  "delta_ms": 2}]})  # fmt: skip


def test_disciplined_oscillator_on_arrays_equals_scalar() -> None:
    """The simulator evaluates a disciplined clock on arrays once the servo has every sample
    before the instants: the same values as the node's scalar reads."""
    spec = _disciplined_spec()
    host = VirtualClock(T0)
    clock, state = node_sync(spec, "B", T0, host)
    osc = clock.oscillator
    assert osc.discipline is not None and not osc.gapless
    t = T0
    for _ in range(30):  # samples every 2 s, each a perfect measurement of the clock error
        t += 2 * S
        host.set(t)
        loc = osc.local_at(t)
        s = compute_sample("s", loc - 1000, t - 500, t - 400, loc, truth_t1_ns=t - 1000,
                           truth_t4_ns=t)  # fmt: skip
        state.add(s, *osc.gaps_at(t))
    q = np.arange(T0, t, 7_777_777, dtype=np.int64)
    loc = osc.local_at_array(q)
    gap, sgap = osc.gaps_at_array(q)
    for i in range(0, len(q), 13):
        ti = int(q[i])
        assert int(loc[i]) == osc.local_at(ti)
        assert (int(gap[i]), int(sgap[i])) == osc.gaps_at(ti)
    # the host starts converged (its 5 ms offset lives in the monotonic clock only); the servo
    # pulls the 2 ms step at 20 s back in, and the step shows in the step gap
    assert abs(osc.local_at(T0) - T0) == 0
    assert abs(osc.local_at(t) - t) < abs(osc.local_at(T0 + 20 * S) - (T0 + 20 * S))
    assert int(sgap[-1]) == 2 * MS


def test_node_oscillator_is_the_one_the_node_builds() -> None:
    spec = _disciplined_spec()
    a = node_oscillator(spec, "B", T0)
    clock, _state = node_sync(spec, "B", T0, VirtualClock(T0))
    b = clock.oscillator
    assert (a.offset_ns, a.drift_ppb, a.wander_ppb, a.seed, a.faults) == (
        b.offset_ns, b.drift_ppb, b.wander_ppb, b.seed, b.faults)  # fmt: skip
    assert a.discipline is not None


def test_fault_windows_come_from_the_nemesis_transitions() -> None:
    spec = from_dict({"ntp": {"servers": 2}, "faults": [
        {"kind": "ntp_outage", "server": 1, "at_s": 5, "duration_s": 10},
        {"kind": "ntp_outage", "server": 0, "at_s": 30},
    ]})  # fmt: skip
    faults = list(spec.faults)
    w1 = windows(faults, T0, ("ntp_outage",), server=1)
    w0 = windows(faults, T0, ("ntp_outage",), server=0)
    assert [(a - T0, b - T0) for a, b, _ in w1] == [(5 * S, 15 * S)]
    assert [(a - T0, b) for a, b, _ in w0] == [(30 * S, FOREVER_NS)]
    plan = transitions(faults, T0, ("ntp_outage",))
    starts = sorted(p[0] for p in plan if p[3] == "start")
    assert starts == sorted(w[0] for w in w0 + w1)
    assert in_force(w1, T0 + 5 * S) is not None and in_force(w1, T0 + 15 * S) is None


class _Transport:
    """A modelled server on a virtual clock: each exchange takes 100 µs of virtual time."""

    name = "s"
    timeout_s = 0.1

    def __init__(self, host: VirtualClock) -> None:
        self.host = host

    def exchange(self):  # type: ignore[no-untyped-def]
        t1 = self.host.now_ns()
        self.host.advance(100_000)
        return compute_sample("s", t1, t1 + 40_000, t1 + 60_000, t1 + 100_000)

    def close(self) -> None:
        pass


def test_poller_loop_runs_unchanged_in_virtual_time() -> None:
    """The poller's own thread loop, on a virtual clock: each poll starts poll_s after the end
    of the previous burst, and no real time is slept."""
    from skewlab.clocks.sync import SyncState

    host = VirtualClock(T0)
    state = SyncState()
    seen: list[int] = []
    stop_after = 20

    poller = NtpPoller(_Transport(host), state, 64.0, 4, clock=host)

    def on_sample(_s: object) -> None:
        seen.append(host.now_ns())
        if len(seen) >= stop_after:
            poller.stop_event.set()

    state.subscribe(on_sample)
    th = threading.Thread(target=poller._run)
    th.start()
    th.join(timeout=10)
    assert not th.is_alive() and len(seen) == stop_after
    gaps = np.diff(seen)
    assert set(gaps.tolist()) == {64 * S + 4 * 100_000}  # poll_s + one burst of 4 exchanges


def test_commit_wait_pass_in_virtual_time(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The commit-wait evaluator driven by a virtual clock: a receipt is evaluated by the
    first pass at which its local clock passed receipt + Δ, never before."""
    b = {"name": "B", "offset_ms": 3, "drift_ppm": 40, "discipline": "free"}
    spec = from_dict({"nodes": [{"name": "c", "role": "coordinator"}, b, {"name": "C"}]})
    host = VirtualClock(T0)
    clock, state = node_sync(spec, "B", T0, host)
    sources = make_sources(["truetime", "skewlab"], state)
    osc = clock.oscillator
    for k in range(1, 6):
        t = T0 + k * S
        loc = osc.local_at(t)
        state.add(
            compute_sample(
                "s",
                loc - 100_000,
                t - 50_000,
                t - 40_000,
                loc,
                truth_t1_ns=t - 100_000,
                truth_t4_ns=t,
            ),
            *osc.gaps_at(t),
        )
    cw = CommitWaitEvaluator(sources, [200], clock.local_ns, tmp_path, 64, poll_s=0.05,
                             clock=host)  # fmt: skip
    receipts = [T0 + 5 * S + j * 10 * MS for j in range(50)]
    cw.push_many(list(range(50)), [osc.local_at(t) for t in receipts])
    assert cw.next_due_local() == osc.local_at(receipts[0]) + 200 * MS
    host.set(receipts[-1])
    assert cw.run_due() == 30  # receipts 0..29 are ≥ 200 ms old on the local clock
    host.set(receipts[-1] + 300 * MS)
    assert cw.run_due() == 20
    cw.stop()
    rows = read_parts(tmp_path, "cw200").to_pylist()
    age = commit_wait_age_column(200)
    assert len(rows) == 50 and all(r[age] >= 200 * MS for r in rows)
