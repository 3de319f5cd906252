"""Vectorized oscillator and source readings (simulator) against the scalar ``local_at`` and
``read``: element by element, over runs with wander, steps, strobes, rate changes, loss."""

from __future__ import annotations

import numpy as np

from skewlab.clocks.oscillator import ClockFault, Oscillator
from skewlab.sim.harness import DelayModel, Harness, PathModel
from skewlab.sim.vector import SourceTrack

S = 1_000_000_000
MS = 1_000_000
T0 = 1_700_000_000 * S
ALL = ["system", "ntp", "truetime", "clockbound", "skewlab"]


def _faulty() -> Oscillator:
    return Oscillator(
        offset_ns=3 * MS, drift_ppb=-45_000, t0_ns=T0, wander_ppb=2.0, seed=7,
        faults=(
            ClockFault("step", T0 + 40 * S, delta_ns=20 * MS),
            ClockFault("freq", T0 + 70 * S, delta_ppb=15_000),
            ClockFault("strobe", T0 + 90 * S, delta_ns=-5 * MS, period_ns=300 * MS,
                       duration_ns=4 * S),
        ),
    )  # fmt: skip


def test_oscillator_arrays_equal_scalar() -> None:
    rng = np.random.default_rng(3)
    t = np.sort(T0 - 5 * S + rng.integers(0, 200 * S, 5000))
    for osc in (_faulty(), Oscillator(offset_ns=-MS, drift_ppb=999_999, t0_ns=T0)):
        loc = osc.local_at_array(t)
        mono = osc.monotonic_at_array(t)
        gap, sgap = osc.gaps_at_array(t)
        for i in range(0, len(t), 7):
            ti = int(t[i])
            assert loc[i] == osc.local_at(ti)
            assert mono[i] == osc.monotonic_at(ti)
            assert (gap[i], sgap[i]) == osc.gaps_at(ti)
    # 30 days at the largest allowed drift: no int64 overflow, still exact
    osc = Oscillator(drift_ppb=1_000_000, t0_ns=T0)
    far = np.array([T0 + 30 * 86400 * S + 123], dtype=np.int64)
    assert osc.local_at_array(far)[0] == osc.local_at(int(far[0]))


def _check(osc: Oscillator, path: PathModel, seed: int) -> int:
    h = Harness(osc, ALL, path=path, poll_s=4, burst=3, seed=seed)
    track = SourceTrack(h.sources)
    truths: list[int] = []
    expect = []
    start = h.t0_ns
    for truth, _local, readings in h.run(150, 37):
        # a sample recorded at time t is visible from t on, as in the harness
        while len(track.visible) < len(h.samples):
            track.visible.append(0)  # placeholder, filled below
            for k, s in enumerate(track.sources):
                track._snaps[k].append(s.snapshot())
            track.visible[-1] = max(start, truth - 1)
        start = truth
        truths.append(truth)
        expect.append(readings)
    t = np.array(truths, dtype=np.int64)
    gap, sgap = osc.gaps_at_array(t)
    got = track.read(t, osc.local_at_array(t), gap, sgap)
    for i, want in enumerate(expect):
        for j, r in enumerate(want):
            g = got[j]
            if r.estimate_ns is None:
                assert not g.valid[i] and g.status[i] == 0
            else:
                assert g.valid[i], (track.sources[j].name, i)
                mine = (int(g.estimate[i]), int(g.earliest[i]), int(g.latest[i]), int(g.status[i]))
                want_t = (r.estimate_ns, r.earliest_ns, r.latest_ns, int(r.status))
                assert mine == want_t, (track.sources[j].name, i)
    return len(expect)


def test_source_arrays_equal_scalar_read() -> None:
    path = PathModel(out=DelayModel(300, 200, 3000), back=DelayModel(80, 40, 900), loss=0.3)
    n = _check(_faulty(), path, 11)
    n += _check(Oscillator(offset_ns=MS, drift_ppb=30_000, t0_ns=T0), PathModel(), 4)
    assert n > 5000
