"""The bound scenario suite: every bounded source on identical samples, in worlds that are not
shaped like any estimator's model.

One emulated node in virtual time (``sim.node.NodeSim``: the node's own clock, servo, poller and
sources, on a one-node experiment spec) on a *disciplined* host (the servo of
``clocks/discipline.py``, as a host running chrony), for a few hours, under one scenario at one
NTP poll interval. Every bounded source subscribes to the same ``SyncState``, so they all stand
on exactly the same samples. Readings at random instants (uniform gaps, mean ``read_every_ms``)
through the sources' array form (``NodeSim.read``, equal to the scalar ``read``:
tests/unit/test_sim_vector.py).

The base world (every scenario): drift drawn within ±50 ppm, random-walk wander 0.1 ppb/√s, a
datacenter-like path to the NTP server (request 150 µs + a near-exponential jitter of mean
150 µs, reply 50 + 30 µs) losing 2 % of requests. Scenarios add one realistic departure each
(``SCENARIOS``). Per source the suite reports (``SourceOutcome``): coverage (answered readings
with earliest ≤ truth ≤ latest), the worst miss, the misses reported SYNCHRONIZED, mean and p99
half-width apart for synchronized readings and for readings inside the disturbance window, and
the time to recover. The benchmark is benchmarks/bound_tightness.py; tests/unit/
test_bound_scenarios.py runs every scenario at every poll.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from skewlab.clocks.base import Status
from skewlab.sim.node import SOLO, T0_NS, NodeSim, solo_spec

S = 1_000_000_000
BOUNDED = ("truetime", "clockbound", "skewlab")
POLLS_S = (16, 64, 1024)  # chrony polls every 64–1024 s by default; 16 s is a fast setting
# a series shipped with the source tree (examples/), replayed by the replay scenario
REPLAY_FILE = Path(__file__).resolve().parents[3] / "examples" / "thermal_host.csv"


def _delay(base_us: float, jitter_us: float) -> dict[str, Any]:
    """``base_us`` plus a near-exponential jitter of mean ``jitter_us`` (Pareto II, shape 100)."""
    return {"dist": "pareto", "min_ms": base_us / 1000, "mean_ms": (base_us + jitter_us) / 1000,
            "shape": 100}  # fmt: skip


def _path(out: tuple[float, float], back: tuple[float, float], loss: float) -> dict[str, Any]:
    return {"links": {f"{SOLO}~ntp-server": {
        "forward": {"delay": _delay(*out), "loss": {"model": "bernoulli", "rate": loss}},
        "back": {"delay": _delay(*back)}}}}  # fmt: skip


@dataclass(frozen=True)
class World:
    """One scenario's world: node keys, network, faults, and the disturbance window (s after
    the start; None: a calm scenario) that the outcome reports apart."""

    node: dict[str, Any]
    network: dict[str, Any]
    faults: list[dict[str, Any]] = field(default_factory=list)
    disturbed: tuple[float, float] | None = None


Builder = Callable[[float, random.Random], World]


def _base(dur_s: float, rng: random.Random, **node: Any) -> dict[str, Any]:
    return {"offset_ms": rng.uniform(-2, 2), "drift_ppm": rng.uniform(-50, 50),
            "wander_ppb": 0.1, "discipline": "disciplined", **node}  # fmt: skip


NET = _path((150, 150), (50, 30), 0.02)


def _calm(d: float, rng: random.Random) -> World:
    return World(_base(d, rng), NET)


def _wander20(d: float, rng: random.Random) -> World:
    return World(_base(d, rng, wander_ppb=2.0), NET)


def _step_synced(d: float, rng: random.Random) -> World:
    at = d * 0.4
    return World(_base(d, rng), NET, [{"kind": "clock_rate", "node": SOLO, "at_s": at,
                                       "delta_ppm": 1.0}], (at, at + 3600))  # fmt: skip


def _step_in_outage(d: float, rng: random.Random) -> World:
    at = d * 0.4
    return World(_base(d, rng), NET, [
        {"kind": "ntp_outage", "at_s": at, "duration_s": 1800, "how": "drop"},
        {"kind": "clock_rate", "node": SOLO, "at_s": at + 600, "delta_ppm": 0.5}],
        (at, at + 1800 + 3600))  # fmt: skip


def _ramp(d: float, rng: random.Random) -> World:
    """2 ppm over 10 minutes (``clock_rate`` with ``ramp_s``: linear frequency, exact phase)."""
    at = d * 0.4
    return World(_base(d, rng), NET, [{"kind": "clock_rate", "node": SOLO, "at_s": at,
                                       "delta_ppm": 2.0, "ramp_s": 600}],
                 (at, at + 600 + 3600))  # fmt: skip


def _thermal(d: float, rng: random.Random) -> World:
    """A diurnal thermal cycle: ±1 ppm over 24 h (an uncompensated crystal moves ~1 ppm for a
    few °C; docs/CONFIG.md, Clock models), starting at its steepest (phase 0)."""
    return World(_base(d, rng, thermal={"amplitude_ppm": 1.0, "period_s": 86400}), NET)


def _replay(d: float, rng: random.Random) -> World:
    """The shipped series examples/thermal_host.csv (generated, not recorded: a host whose
    crystal heats up in a busy period; examples/thermal_host.py) replayed as the oscillator's
    error, on top of the base drift."""
    return World(_base(d, rng, replay={"file": str(REPLAY_FILE),
                                       "sign": "reference_minus_clock"}), NET)  # fmt: skip


def _realtime_step(d: float, rng: random.Random) -> World:
    at = d * 0.4 + 7
    return World(_base(d, rng), NET, [{"kind": "clock_step", "node": SOLO, "at_s": at,
                                       "delta_ms": 5.0}], (at, at + 3600))  # fmt: skip


def _asymmetric(d: float, rng: random.Random) -> World:
    """A path 1.9 ms longer out than back (a congested uplink): θ biased by ~0.95 ms."""
    return World(_base(d, rng), _path((2000, 100), (100, 30), 0.02))


def _vm_migration(d: float, rng: random.Random) -> World:
    """A live migration: the guest's clock jumps (−20 ms) and its new host's oscillator runs
    at another frequency (+8 ppm)."""
    at = d * 0.4 + 3
    return World(_base(d, rng), NET, [
        {"kind": "clock_step", "node": SOLO, "at_s": at, "delta_ms": -20.0},
        {"kind": "clock_rate", "node": SOLO, "at_s": at, "delta_ppm": 8.0}],
        (at, at + 3600))  # fmt: skip


def _beyond_step(d: float, rng: random.Random) -> World:
    """A 10 ppm frequency step while synchronized: ten times skewlab's frequency-change
    allowance. Nothing can see it before the next sample; it shows where the guarantee ends."""
    at = d * 0.4
    return World(_base(d, rng), NET, [{"kind": "clock_rate", "node": SOLO, "at_s": at,
                                       "delta_ppm": 10.0}], (at, at + 3600))  # fmt: skip


def _beyond_ramp(d: float, rng: random.Random) -> World:
    """5 ppm over 10 minutes: beyond the 1 ppm allowance."""
    at = d * 0.4
    return World(_base(d, rng), NET, [{"kind": "clock_rate", "node": SOLO, "at_s": at,
                                       "delta_ppm": 5.0, "ramp_s": 600}],
                 (at, at + 600 + 3600))  # fmt: skip


SCENARIOS: dict[str, Builder] = {
    "calm": _calm,
    "wander_x20": _wander20,
    "freq_step_1ppm_synced": _step_synced,
    "freq_step_0.5ppm_in_outage": _step_in_outage,
    "ramp_2ppm_10min": _ramp,
    "diurnal_thermal": _thermal,
    "replay_thermal_host": _replay,
    "realtime_step": _realtime_step,
    "asymmetric_path": _asymmetric,
    "vm_migration": _vm_migration,
}
# Beyond skewlab's stated assumptions (freq_change_ppm = 1): reported apart, never asserted.
BEYOND: dict[str, Builder] = {"beyond_freq_step_10ppm": _beyond_step,
                              "beyond_ramp_5ppm_10min": _beyond_ramp}  # fmt: skip
_ALL = {**SCENARIOS, **BEYOND}


@dataclass
class SourceOutcome:
    """One source's numbers in one scenario at one poll (half-widths in ns)."""

    answered: int
    coverage: float
    worst_miss_ns: int
    misses: int
    misses_synchronized: int
    hw_synced_mean: float
    hw_synced_p99: float
    hw_synced_median: float
    hw_disturbed_mean: float | None
    hw_disturbed_p99: float | None
    recover_s: float | None  # disturbance start → last miss or back within 1.5× calm median
    synced: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))  # half-widths


@dataclass
class ScenarioOutcome:
    name: str
    poll_s: float
    hours: float
    readings: int
    samples: int
    truth: np.ndarray = field(repr=False)
    sources: dict[str, SourceOutcome]
    series: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(repr=False)
    # per source: (earliest − truth, latest − truth, status), for figures


def _p99(x: np.ndarray) -> float:
    return float(np.quantile(x, 0.99, method="inverted_cdf")) if len(x) else float("nan")


def run_scenario(
    name: str,
    poll_s: float,
    hours: float = 6.0,
    read_every_ms: float = 1000.0,
    seed: int = 1,
    keep_series: bool = False,
    source_params: dict[str, dict[str, Any]] | None = None,
) -> ScenarioOutcome:
    """Run scenario ``name`` at NTP poll ``poll_s`` for ``hours`` of virtual time."""
    rng = random.Random(f"{name}/{seed}")
    dur_s = hours * 3600
    world = _ALL[name](dur_s, rng)
    spec = solo_spec(world.node, sources=list(BOUNDED), seed=seed,
                     ntp={"poll_s": poll_s, "burst": 4}, network=world.network,
                     faults=world.faults, source_params=source_params or {})  # fmt: skip
    node = NodeSim(spec, SOLO, T0_NS)
    np_rng = np.random.default_rng(seed)
    mean_ns = read_every_ms * 1e6
    n_max = int(dur_s * 1e9 / mean_ns * 1.05) + 10
    truth = T0_NS + np.cumsum(np.maximum(1, np.rint(np_rng.uniform(0, 2 * mean_ns, n_max))))
    end = T0_NS + round(dur_s * S)
    truth = truth[truth < end].astype(np.int64)
    n = len(truth)
    lo = {s: np.empty(n, dtype=np.int64) for s in BOUNDED}
    hi = {s: np.empty(n, dtype=np.int64) for s in BOUNDED}
    st = {s: np.empty(n, dtype=np.int8) for s in BOUNDED}
    done = 0

    def read_before(t_out: int, chunk_ns: int = 3600 * S) -> None:
        """Read the instants before a poll's outcome, an hour's worth at a time (each reading
        stands on the snapshot in force at its instant: ``SourceTrack``)."""
        nonlocal done
        j = int(np.searchsorted(truth, t_out, side="left"))
        if j == done or (t_out < end and truth[done] > t_out - chunk_ns):
            return
        _local, readings = node.read(truth[done:j])
        for s, r in zip(BOUNDED, readings, strict=True):
            lo[s][done:j], hi[s][done:j], st[s][done:j] = r.earliest, r.latest, r.status
        done = j

    node.run_until(end, read_before)
    read_before(end)
    rel = (truth - T0_NS) / S
    dis = np.zeros(n, dtype=bool)
    if world.disturbed is not None:
        dis = (rel >= world.disturbed[0]) & (rel < world.disturbed[1])
    out: dict[str, SourceOutcome] = {}
    series = {}
    for s in BOUNDED:
        ok = st[s] != Status.UNSYNCHRONIZED
        below = np.where(ok, lo[s] - truth, 0)  # > 0: the bound is above truth
        above = np.where(ok, truth - hi[s], 0)  # > 0: the bound is below truth
        miss = ok & ((below > 0) | (above > 0))
        worst = int(max(below.max(initial=0), above.max(initial=0)))
        hw = (hi[s] - lo[s]) / 2.0
        syn = ok & (st[s] == Status.SYNCHRONIZED)
        calm_syn = syn & ~dis
        med = float(np.median(hw[calm_syn])) if calm_syn.any() else float("nan")
        recover = None
        if world.disturbed is not None:
            t_d = world.disturbed[0]
            after = rel >= t_d
            last_miss = float(rel[miss & after].max()) if (miss & after).any() else t_d
            back = after & syn & (hw <= 1.5 * med) & (rel >= last_miss)
            # back within the calm width, after the fault's own effects (the ramp, the outage)
            # could have widened it
            back &= rel >= t_d + 1
            recover = (float(rel[back].min()) if back.any() else float(rel[-1])) - t_d
            recover = max(recover, last_miss - t_d)
        dhw = hw[ok & dis]
        out[s] = SourceOutcome(
            answered=int(ok.sum()),
            coverage=float(1 - miss.sum() / max(1, ok.sum())),
            worst_miss_ns=worst,
            misses=int(miss.sum()),
            misses_synchronized=int((miss & syn).sum()),
            hw_synced_mean=float(hw[syn].mean()) if syn.any() else float("nan"),
            hw_synced_p99=_p99(hw[syn]),
            hw_synced_median=float(np.median(hw[syn])) if syn.any() else float("nan"),
            hw_disturbed_mean=float(dhw.mean()) if len(dhw) else None,
            hw_disturbed_p99=_p99(dhw) if len(dhw) else None,
            recover_s=recover,
            synced=hw[syn],
        )
        if keep_series:
            series[s] = (lo[s] - truth, hi[s] - truth, st[s])
    return ScenarioOutcome(name, poll_s, hours, n, node.samples, truth, out, series)
