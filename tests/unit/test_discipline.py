"""The disciplined host's servo (clocks/discipline.py) behaves like an NTP daemon's: it slews a
measured phase offset away over its time constant and then stops, locks its frequency to the
oscillator's, and during an outage adds no error beyond its frequency error × time.

Driven sample by sample in virtual time: each "sample" is a perfect measurement of the node's
realtime error (θ = true − local), so every number here is the servo's alone.
"""

from __future__ import annotations

import pytest

from skewlab.clocks.discipline import Discipline
from skewlab.clocks.oscillator import Oscillator

S = 1_000_000_000
T0 = 1_700_000_000 * S


def _run(osc: Oscillator, d: Discipline, t_from: int, t_to: int, poll_s: float) -> int:
    """Feed the servo one exact offset every ``poll_s`` from ``t_from`` to ``t_to``; the
    instant after the last update."""
    t = t_from
    while t <= t_to:
        d.update(t - osc.local_at(t), osc.monotonic_at(t))
        t += round(poll_s * S)
    return t


def test_servo_corrects_a_phase_offset_then_stops_slewing() -> None:
    d = Discipline(phase_time_s=16.0)
    osc = Oscillator(offset_ns=3_000_000, drift_ppb=0, t0_ns=T0, discipline=d)
    d.update(T0 - osc.local_at(T0), osc.monotonic_at(T0))  # one sample: θ = −3 ms
    assert osc.error_at(T0) == 3_000_000
    assert osc.error_at(T0 + 8 * S) == 1_500_000  # halfway through the 16 s slew
    assert osc.error_at(T0 + 16 * S) == 0  # corrected...
    for k in (17, 60, 3600):  # ... and then it stops: no overshoot, no runaway
        assert osc.error_at(T0 + k * S) == 0
    assert d.remaining_at(osc.monotonic_at(T0 + 4 * S)) == -2_250_000
    assert d.remaining_at(osc.monotonic_at(T0 + 20 * S)) == 0


def test_large_offsets_are_slewed_at_most_at_the_rate_limit() -> None:
    d = Discipline(phase_time_s=16.0, max_slew_ppm=500.0)
    osc = Oscillator(offset_ns=-100_000_000, t0_ns=T0, discipline=d)  # 100 ms behind
    d.update(T0 - osc.local_at(T0), osc.monotonic_at(T0))
    # 100 ms at 500 µs/s takes 200 s
    assert osc.error_at(T0 + 100 * S) == -50_000_000
    assert osc.error_at(T0 + 200 * S) == 0
    assert osc.error_at(T0 + 300 * S) == 0


@pytest.mark.parametrize("poll_s", [1.0, 16.0, 64.0, 1024.0])
def test_servo_locks_frequency_and_outage_error_is_frequency_error_times_time(
    poll_s: float,
) -> None:
    drift = 25_000  # 25 ppm fast; the servo starts knowing nothing of it
    d = Discipline()
    osc = Oscillator(offset_ns=2_000_000, drift_ppb=drift, t0_ns=T0, discipline=d)
    t_end = T0 + round(max(3600, 40 * poll_s) * S)
    last = _run(osc, d, T0, t_end, poll_s) - round(poll_s * S)
    # locked: the frequency correction cancels the drift (to 1 ppb), the error is small
    assert d.freq_ppb == pytest.approx(-drift, abs=1.0)
    settle = last + round(max(d.phase_time_s, poll_s) * S)
    err0 = osc.error_at(settle)
    assert abs(err0) < 2_000  # ns
    # outage: no update for an hour. The phase term has ended; the error grows only by the
    # residual frequency error × time, nothing else: the drift plus the correction's rate, which
    # runs on the monotonic clock (itself fast by the drift)
    resid_ppb = drift + d.freq_ppb * (1 + drift / S)
    assert abs(resid_ppb) < 1.0
    for h in (600, 1800, 3600):
        t = settle + h * S
        expect = err0 + resid_ppb * h
        assert osc.error_at(t) == pytest.approx(expect, abs=2.0)


def test_servo_with_a_drift_file_starts_locked() -> None:
    """A host whose daemon ran before restores its frequency (``clocks/node.py`` starts the
    servo at −drift): with one sample its error stays within its phase correction."""
    d = Discipline(freq_ppb=-40_000.0 / (1 + 40_000 / S))  # a rate of the monotonic clock
    osc = Oscillator(offset_ns=1_000_000, drift_ppb=40_000, t0_ns=T0, discipline=d)
    d.update(T0 - osc.local_at(T0), osc.monotonic_at(T0))
    assert abs(osc.error_at(T0 + 16 * S)) <= 1
    assert abs(osc.error_at(T0 + 3600 * S)) <= 1


def test_clockbound_on_a_disciplined_node_reads_the_daemons_remaining_offset() -> None:
    """ClockBound's |offset| term on a disciplined node is what the daemon has not yet slewed
    away (it shrinks to 0 over the servo's phase time), not the raw sample's |θ|; the array
    form (simulator) gives the same readings as ``read``."""
    import numpy as np

    from skewlab.clocks.node import node_sync
    from skewlab.clocks.sources import make_sources
    from skewlab.clocks.track import SourceTrack
    from skewlab.ntp.client import compute_sample
    from skewlab.spec import from_dict
    from skewlab.timebase import VirtualClock

    spec = from_dict({"nodes": [{"name": "c", "role": "coordinator"},
                                {"name": "B", "discipline": "disciplined"}, {"name": "C"}],
                      # the host starts converged; its clock is then stepped 4 ms ahead
                      "faults": [{"kind": "clock_step", "node": "B", "at_s": 0.5,
                                  "delta_ms": 4}]})  # fmt: skip
    host = VirtualClock(T0)
    clock, state = node_sync(spec, "B", T0, host)
    osc = clock.oscillator
    (cb,) = make_sources(["clockbound"], state)
    track = SourceTrack([cb])
    t = T0 + S
    host.set(t)
    loc = osc.local_at(t)  # a perfect sample (λ = delay/2 = 500 ns): θ = −4 ms
    s = compute_sample("s", loc - 1000, t - 500, t - 500, loc, truth_t1_ns=t - 1000,
                       truth_t4_ns=t)  # fmt: skip
    state.add(s, *osc.gaps_at(t))
    track.record(t)
    lam = s.root_distance_ns
    disc = osc.discipline
    for k in (0, 4, 8, 15, 16, 40):
        q = t + k * S
        rem = abs(disc.remaining_at(osc.monotonic_at(q)))  # the servo's own, in monotonic time
        assert rem == {0: 4_000_000, 4: 3_000_000, 8: 2_000_000, 15: 250_000}.get(k, 0)
        r = cb.read(osc.local_at(q))
        age = osc.local_at(q) - s.t4_ns
        growth = -(-age * 50_000 // S)
        assert r.latest_ns - r.estimate_ns == pytest.approx(lam + rem + growth, abs=2)
    q = np.arange(t, t + 40 * S, 333_333_333, dtype=np.int64)
    gap, sgap = osc.gaps_at_array(q)
    (many,) = track.read(q, osc.local_at_array(q), gap, sgap)
    one = [cb.read(osc.local_at(int(x))) for x in q]
    assert [int(x) for x in many.latest] == [r.latest_ns for r in one]
    assert [int(x) for x in many.earliest] == [r.earliest_ns for r in one]
