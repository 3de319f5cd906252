"""Vectorized oscillator and source readings (simulator) against the scalar ``local_at`` and
``read``: element by element, over ``NodeSim`` runs with wander, steps, strobes, rate changes,
loss (the node and its path from an experiment spec, as in tests/unit/test_sim_node.py)."""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from skewlab.clocks.node import node_oscillator
from skewlab.clocks.oscillator import Oscillator
from skewlab.sim.node import SOLO, T0_NS, NodeSim, solo_spec
from skewlab.spec import ExperimentSpec
from tests.unit.test_sim_node import exp_delay, ntp_path

S = 1_000_000_000
MS = 1_000_000
T0 = T0_NS
ALL = ["system", "ntp", "truetime", "clockbound", "skewlab"]
FAULTY = {"offset_ms": 3, "drift_ppm": -45, "wander_ppb": 2.0}
FAULTS = [
    {"kind": "clock_step", "node": SOLO, "at_s": 40, "delta_ms": 20},
    {"kind": "clock_rate", "node": SOLO, "at_s": 70, "delta_ppm": 15},
    {"kind": "clock_strobe", "node": SOLO, "at_s": 90, "delta_ms": -5, "period_ms": 300,
     "duration_s": 4},
]  # fmt: skip


def _spec(node: dict[str, Any], faults: list[dict[str, Any]], out: dict[str, Any],
          back: dict[str, Any], loss: float, seed: int) -> ExperimentSpec:  # fmt: skip
    return solo_spec(node, sources=ALL, seed=seed, faults=faults, ntp={"poll_s": 4, "burst": 3},
                     network=ntp_path(out, back, loss))  # fmt: skip


def test_oscillator_arrays_equal_scalar() -> None:
    rng = np.random.default_rng(3)
    t = np.sort(T0 - 5 * S + rng.integers(0, 200 * S, 5000))
    faulty = node_oscillator(_spec(FAULTY, FAULTS, exp_delay(100, 50), exp_delay(100, 50), 0, 7),
                             SOLO, T0)  # fmt: skip
    assert len(faulty.faults) == 3 and faulty.wander_ppb > 0
    for osc in (faulty, Oscillator(offset_ns=-MS, drift_ppb=999_999, t0_ns=T0)):
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


def _check(spec: ExperimentSpec, seed: int, end_s: int = 150, gap_ms: int = 37,
           min_samples: int = 20) -> int:  # fmt: skip
    """Scalar ``read`` at random instants during a run (each on the state visible then) against
    ``NodeSim.read`` (``SourceTrack``: ``read_many`` on the recorded snapshots) afterwards."""
    node = NodeSim(spec, SOLO, T0)
    truths: list[int] = []
    expect = []
    for truth, local, readings in node.scalar_run(T0 + end_s * S, gap_ms * MS,
                                                  random.Random(seed)):  # fmt: skip
        assert local == node.osc.local_at(truth)
        truths.append(truth)
        expect.append(readings)
    assert len(node.track.visible) == node.samples > min_samples
    t = np.array(truths, dtype=np.int64)
    local_a, got = node.read(t)
    assert (local_a == node.osc.local_at_array(t)).all()
    for i, want in enumerate(expect):
        for j, r in enumerate(want):
            g = got[j]
            if r.estimate_ns is None:
                assert not g.valid[i] and g.status[i] == 0
            else:
                assert g.valid[i], (node.sources[j].name, i)
                mine = (int(g.estimate[i]), int(g.earliest[i]), int(g.latest[i]), int(g.status[i]))
                want_t = (r.estimate_ns, r.earliest_ns, r.latest_ns, int(r.status))
                assert mine == want_t, (node.sources[j].name, i)
    return len(expect)


def test_source_arrays_equal_scalar_read() -> None:
    n = _check(_spec(FAULTY, FAULTS, exp_delay(300, 200), exp_delay(80, 40), 0.3, 11), 11)
    plain = {"offset_ms": 1, "drift_ppm": 30}
    n += _check(_spec(plain, [], exp_delay(100, 50), exp_delay(100, 50), 0.0, 4), 4)
    assert n > 5000


def test_disciplined_arrays_equal_scalar_at_a_realistic_poll_with_a_rate_change() -> None:
    """A host disciplined by its servo, polling every 64 s (chrony's shortest default), whose
    oscillator's frequency moves by 2 ppm mid-run: the simulator's array readings (local
    clock through the servo's segments, every source) equal the scalar reads made during
    the run, each on the state visible then."""
    node = {"offset_ms": 4, "drift_ppm": 25, "wander_ppb": 1.0, "discipline": "disciplined"}
    faults = [{"kind": "clock_rate", "node": SOLO, "at_s": 900, "delta_ppm": 2}]
    spec = solo_spec(node, sources=ALL, seed=5, faults=faults, ntp={"poll_s": 64, "burst": 4},
                     network=ntp_path(exp_delay(100, 50), exp_delay(100, 50), 0.0))  # fmt: skip
    assert _check(spec, 5, end_s=1800, gap_ms=1500, min_samples=25) > 1000


def test_track_before_the_first_sample_reads_no_value() -> None:
    """A worker's track records the sources' state when the receive loop starts, possibly
    before any sample (None snapshots): every array read then gives no value, status 0, for
    every source, also beside later snapshots in the same batch."""
    from skewlab.clocks.node import node_sync
    from skewlab.clocks.sources import make_sources
    from skewlab.clocks.track import SourceTrack

    spec = solo_spec({"offset_ms": 1}, sources=ALL, ntp={"poll_s": 4})
    clock, state = node_sync(spec, SOLO, T0)
    sources = make_sources(ALL, state)
    track = SourceTrack(sources)
    track.record(T0)  # nothing known yet
    sim = NodeSim(spec, SOLO, T0)
    sim.run_until(T0 + 30 * S)
    first = sim.state.history[0]
    state.add(first)
    track.record(first.truth_t4_ns)
    assert first.truth_t4_ns > T0
    t = np.array([T0, first.truth_t4_ns + MS], dtype=np.int64)
    local, gap, sgap = clock.oscillator.local_gaps_at_array(t)
    for src, r in zip(sources, track.read(t, local, gap, sgap), strict=True):
        if src.name == "system":
            assert r.valid.all()
            continue
        assert not r.valid[0] and r.status[0] == 0, src.name
        assert r.valid[1] and r.status[1] > 0, src.name
