"""A node's clock as the experiment spec describes it: the one place where a spec's node
becomes an oscillator (offset, drift, wander, thermal sinusoids, a replayed series, scheduled
clock faults, discipline profile), a NodeClock reading some host clock, and the SyncState its
sources and servo stand on.

Used unchanged by the node processes (host clock) and the simulator (virtual clock).
"""

from __future__ import annotations

import math

from skewlab.clocks.discipline import Discipline, make_discipline
from skewlab.clocks.oscillator import NodeClock, Oscillator, Sinusoid
from skewlab.clocks.replay import replay_from_spec
from skewlab.clocks.sync import SyncState
from skewlab.nemesis.schedule import clock_faults
from skewlab.spec import ExperimentSpec
from skewlab.timebase import HOST_CLOCK, TimeSource


def node_oscillator(spec: ExperimentSpec, name: str, t0_ns: int) -> Oscillator:
    """The oscillator of node ``name``: its offset and drift at ``t0_ns``, its wander (seeded
    from the spec's seed and the node's index), its scheduled clock faults and, for
    ``discipline = "disciplined"``, a servo (fed by :func:`node_sync`)."""
    return _build(spec, name, t0_ns)[0]


def _build(spec: ExperimentSpec, name: str, t0_ns: int) -> tuple[Oscillator, Discipline | None]:
    """``node_oscillator`` and its servo (typed as the discipline, which can follow a state)."""
    n = spec.node(name)
    # a host whose daemon ran before: its drift file holds the constant drift (docs/CONFIG.md),
    # as a rate of the monotonic clock (which itself runs fast by the drift)
    drift_file_ppb = -n.drift_ppm * 1000.0 / (1 + n.drift_ppm / 1e6)
    servo = make_discipline(n.discipline, freq_ppb=drift_file_ppb)
    osc = Oscillator(
        offset_ns=round(n.offset_ms * 1_000_000),
        drift_ppb=round(n.drift_ppm * 1_000),
        t0_ns=t0_ns,
        wander_ppb=n.wander_ppb,
        seed=spec.seed * 1000 + spec.nodes.index(n),
        faults=clock_faults(spec, name, t0_ns),
        discipline=servo,
        sinusoids=tuple(Sinusoid(c.amplitude_ppm * 1000, round(c.period_s * 1e9),
                                 math.radians(c.phase_deg), t0_ns) for c in n.thermal),
        replay=None if n.replay is None else replay_from_spec(n.replay, t0_ns),
    )  # fmt: skip
    if servo is not None:
        # a steady-state host: its daemon had converged before the run, so at t0 its system
        # clock reads true time (the oscillator's offset lives on in the monotonic clock)
        m0 = osc.monotonic_at(t0_ns)
        servo.settle(m0, t0_ns - m0)
    return osc, servo


def node_sync(
    spec: ExperimentSpec, name: str, t0_ns: int, host: TimeSource = HOST_CLOCK
) -> tuple[NodeClock, SyncState]:
    """The node's clock (reading ``host``) and the sync state its sources stand on; a
    disciplined node's servo is subscribed before any sample, so it sees every one."""
    osc, servo = _build(spec, name, t0_ns)
    clock = NodeClock(osc, host)
    state = SyncState(clock=clock)
    if servo is not None:
        servo.follow(state)
    return clock, state
