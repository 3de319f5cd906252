"""Oscillator formulas, faults, monotonic reading, wander determinism, discipline, replay."""

from __future__ import annotations

from pathlib import Path

import pytest

from skewlab.clocks.discipline import Discipline, make_discipline
from skewlab.clocks.oscillator import ClockFault, NodeClock, Oscillator, Wander
from skewlab.clocks.replay import ReplayOscillator
from skewlab.timebase import VirtualClock

S = 1_000_000_000
T0 = 1_700_000_000 * S


def test_offset_and_drift_by_hand() -> None:
    osc = Oscillator(offset_ns=3_000_000, drift_ppb=40_000, t0_ns=T0)
    t = T0 + 10 * S
    # 10 s at 40 ppm = 400 µs on top of the 3 ms offset
    assert osc.local_at(t) == t + 3_000_000 + 400_000
    assert osc.monotonic_at(t) == osc.local_at(t)
    assert osc.gap_at(t) == 0
    assert osc.error_at(T0 - 5 * S) == 3_000_000 - 200_000


def test_step_moves_realtime_only() -> None:
    at = T0 + 100 * S
    osc = Oscillator(
        offset_ns=0, drift_ppb=0, t0_ns=T0, faults=(ClockFault("step", at, 5_000_000),)
    )
    before, after = at - 1, at + 1
    assert osc.local_at(before) == before
    assert osc.local_at(after) == after + 5_000_000
    assert osc.monotonic_at(after) == after  # monotonic never steps
    assert osc.gaps_at(after) == (5_000_000, 5_000_000)


def test_frequency_jump_moves_both_clocks() -> None:
    at = T0 + 10 * S
    osc = Oscillator(t0_ns=T0, drift_ppb=1_000, faults=(ClockFault("freq", at, delta_ppb=2_000),))
    t = at + 3 * S
    # 13 s at 1 ppm, plus 3 s at the extra 2 ppm
    expected = t + 13 * 1_000 + 3 * 2_000
    assert osc.local_at(t) == expected
    assert osc.monotonic_at(t) == expected


def test_strobe_alternates_then_stops() -> None:
    at = T0
    f = ClockFault("strobe", at, delta_ns=7_000_000, period_ns=S, duration_ns=3 * S)
    osc = Oscillator(t0_ns=T0, faults=(f,))
    quarter = S // 4
    assert osc.error_at(at + quarter) == 0
    assert osc.error_at(at + 3 * quarter) == 7_000_000
    assert osc.error_at(at + 5 * quarter) == 0
    assert osc.error_at(at + 7 * quarter) == 7_000_000
    assert osc.error_at(at + 3 * S + 3 * quarter) == 0  # strobe over
    assert osc.monotonic_at(at + 3 * quarter) == at + 3 * quarter


def test_wander_is_deterministic_and_order_independent() -> None:
    a = Oscillator(t0_ns=T0, wander_ppb=0.5, seed=7)
    b = Oscillator(t0_ns=T0, wander_ppb=0.5, seed=7)
    c = Oscillator(t0_ns=T0, wander_ppb=0.5, seed=8)
    ts = [T0 + k * 997_000_000 for k in range(0, 200, 7)]
    forward = [a.local_at(t) for t in ts]
    backward = [b.local_at(t) for t in reversed(ts)][::-1]
    assert forward == backward
    assert forward != [c.local_at(t) for t in ts]
    assert any(x != t for x, t in zip(forward, ts, strict=True))


def test_wander_phase_is_the_integral_of_its_frequency() -> None:
    w = Wander(1.0, seed=3, t0_ns=0, step_s=1.0)
    # sum over whole cells of freq (ppb) × 1 s = ns
    total = sum(w.freq_ppb(k * S + 1) for k in range(50))
    assert w.phase_ns(50 * S) == pytest.approx(total, abs=1e-6)
    half = w.phase_ns(50 * S) + w.freq_ppb(50 * S + 1) * 0.5
    assert w.phase_ns(50 * S + S // 2) == pytest.approx(half, abs=1e-6)


def test_node_clock_reads_one_instant() -> None:
    host = VirtualClock(T0 + 5 * S)
    osc = Oscillator(offset_ns=1_000, drift_ppb=0, t0_ns=T0, faults=(ClockFault("step", T0, 50),))
    clock = NodeClock(osc, host)
    truth, local, mono = clock.now3()
    assert truth == T0 + 5 * S
    assert local == truth + 1_050
    assert mono == truth + 1_000
    assert clock.gap_ns() == local - mono


def test_discipline_slews_toward_ntp_without_steps() -> None:
    d = Discipline(phase_time_s=10.0, max_slew_ppm=500.0)
    d.update(theta_ns=1_000_000, mono_now_ns=0)  # clock 1 ms behind: slew forward
    # the 1 ms is slewed over 10 s: 100 µs/s = 100_000 ppb (no frequency term yet)
    assert d.slew_ppb() == pytest.approx(100_000.0)
    assert d.correction_at(2 * S) == 200_000
    d.update(theta_ns=10**9, mono_now_ns=2 * S)  # huge offset: slew is rate limited
    assert d.slew_ppb() == 500_000.0  # and, beyond 128 ms, leaves the frequency alone
    assert d.freq_ppb == 0.0
    assert d.correction_at(2 * S) == 200_000  # continuous at the update
    assert d.correction_at(3 * S) == 200_000 + 500_000
    assert make_discipline("free") is None
    with pytest.raises(ValueError, match="unknown clock profile"):
        make_discipline("nope")


def test_replay_interpolates_and_holds(tmp_path: Path) -> None:
    p = tmp_path / "rec.csv"
    p.write_text("t,err\n0,0\n10,2.0\n20,-1.0\n")
    osc = ReplayOscillator.from_csv(p, t0_ns=T0, time_column="t", offset_column="err")
    assert osc.error_at(T0 + 5 * S) == 1_000_000  # halfway to 2 ms
    assert osc.error_at(T0 + 15 * S) == 500_000  # halfway from 2 to −1 ms
    assert osc.error_at(T0 - S) == 0  # held before the first point
    assert osc.error_at(T0 + 99 * S) == -1_000_000  # held after the last
    assert osc.local_at(T0 + 10 * S) == T0 + 10 * S + 2_000_000
    assert NodeClock(osc, VirtualClock(T0 + 10 * S)).now() == (T0 + 10 * S, T0 + 10 * S + 2_000_000)


def test_replay_errors_name_the_problem(tmp_path: Path) -> None:
    p = tmp_path / "bad.csv"
    p.write_text("elapsed_s,offset_ms\n0,1\n1,x\n")
    with pytest.raises(ValueError, match="line 3"):
        ReplayOscillator.from_csv(p)
    with pytest.raises(ValueError, match="no column 'secs'"):
        ReplayOscillator.from_csv(p, time_column="secs")
    p.write_text("elapsed_s,offset_ms\n1,1\n1,2\n")
    with pytest.raises(ValueError, match="strictly increasing"):
        ReplayOscillator.from_csv(p)
