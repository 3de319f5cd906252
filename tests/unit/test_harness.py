"""The virtual-time harness: sample arithmetic vs truth, the Spanner sawtooth, step detection,
determinism, outages, and a short coverage run."""

from __future__ import annotations

from itertools import pairwise

from skewlab.clocks.base import Status
from skewlab.clocks.discipline import Discipline
from skewlab.clocks.oscillator import ClockFault, Oscillator
from skewlab.ntp.packet import precision_ns
from skewlab.sim.harness import DelayModel, Harness, Outage, PathModel

S = 1_000_000_000
MS = 1_000_000
T0 = 1_700_000_000 * S
ALL = ["system", "ntp", "truetime", "clockbound", "skewlab"]


def test_samples_hold_the_true_offset_within_root_distance() -> None:
    osc = Oscillator(offset_ns=4 * MS, drift_ppb=-70_000, t0_ns=T0, wander_ppb=0.2, seed=2)
    path = PathModel(out=DelayModel(300, 200, 3000), back=DelayModel(50, 20, 500), loss=0.2)
    h = Harness(osc, ["ntp"], path=path, poll_s=8, seed=5)
    for _ in h.run(600, 1000):
        pass
    assert len(h.samples) > 50 and 0 < h.lost < h.exchanges
    for s in h.samples:
        true_theta = s.truth_t4_ns - osc.local_at(s.truth_t4_ns)
        assert abs(true_theta - s.offset_ns) <= s.root_distance_ns


def test_truetime_spanner_sawtooth() -> None:
    # 30 s poll, 200 µs/s, sample distance ≈ 1 ms → ε from ≈1 ms up to ≈7 ms and back.
    path = PathModel(out=DelayModel(1000, 0), back=DelayModel(996, 0), hold_us=4)
    h = Harness(Oscillator(t0_ns=T0, drift_ppb=20_000), ["truetime"], path=path, poll_s=30, burst=1)
    eps = []
    for _truth, local, (r,) in h.run(300, 500):
        s = h.state.latest
        eps.append((r.latest_ns - r.earliest_ns) // 2)
        age = local - s.t4_ns
        assert eps[-1] == s.root_distance_ns + -((-age * 200_000) // S)  # ε by hand
    lam = h.samples[0].root_distance_ns
    # λ = δ/2 (δ = 1000 + 996 µs) plus the timestamp precisions (about a µs each)
    delta = 1_000_000 + 996_000
    assert delta // 2 < lam <= delta // 2 + 2 * precision_ns(-19)
    assert lam <= min(eps) < lam + 200_000  # just after a sample: ≈ 1 ms
    assert 6 * MS < max(eps) <= lam + 30 * 200_000  # just before the next: ≈ 7 ms
    drops = sum(1 for a, b in pairwise(eps) if b < a)
    assert drops == len(h.samples) - 1  # one drop per new sample: a sawtooth


def test_step_detection_keeps_skewlab_valid() -> None:
    step_at = T0 + 200 * S + S // 2  # between two polls (16 s)
    osc = Oscillator(t0_ns=T0, drift_ppb=30_000, faults=(ClockFault("step", step_at, 50 * MS),))
    h = Harness(osc, ["truetime", "skewlab"], poll_s=16, seed=3)
    sk = h.source("skewlab")
    after_step: list[tuple[int, object, object]] = []
    for truth, _local, (tt, skr) in h.run(260, 100):
        assert skr.earliest_ns <= truth <= skr.latest_ns
        if step_at <= truth < step_at + 4 * S:
            after_step.append((truth, tt, skr))
    assert after_step
    for truth, tt, skr in after_step:
        assert skr.status == Status.FREE_RUNNING  # step seen via the monotonic clock
        assert not tt.earliest_ns <= truth <= tt.latest_ns  # truetime is off by the step
    assert sk.steps == 1 and sk.resets == 1
    assert h.source("skewlab").read(h.osc.local_at(h.host.now_ns())).status == Status.SYNCHRONIZED


def test_runs_are_deterministic_for_a_seed() -> None:
    def trace(seed: int) -> list[tuple[int, int | None]]:
        osc = Oscillator(offset_ns=MS, drift_ppb=10_000, t0_ns=T0, wander_ppb=0.5, seed=seed)
        path = PathModel(loss=0.1)
        h = Harness(osc, ["skewlab"], path=path, poll_s=4, seed=seed)
        return [(t, r[0].latest_ns) for t, _l, r in h.run(120, 500)]

    assert trace(4) == trace(4)
    assert trace(4) != trace(5)


def test_outage_ages_the_status_and_never_invents_a_value() -> None:
    h = Harness(
        Oscillator(t0_ns=T0, drift_ppb=5_000),
        ["truetime", "clockbound", "skewlab"],
        {
            n: {"stale_after_s": 30, "unsync_after_s": 120}
            for n in ("truetime", "clockbound", "skewlab")
        },
        outages=(Outage(60, 10_000),),
        poll_s=8,
    )
    seen: dict[Status, int] = {}
    for _t, _l, rs in h.run(300, 1000):
        for r in rs:
            seen[r.status] = seen.get(r.status, 0) + 1
            if r.status == Status.UNSYNCHRONIZED:
                assert r.estimate_ns is None
    assert set(seen) == {Status.SYNCHRONIZED, Status.FREE_RUNNING, Status.UNSYNCHRONIZED}
    assert h.failed_polls > 0


def test_short_run_skewlab_covers_truth_and_is_tighter() -> None:
    osc = Oscillator(offset_ns=2 * MS, drift_ppb=-85_000, t0_ns=T0, wander_ppb=0.1, seed=9)
    path = PathModel(out=DelayModel(200, 150, 2000), back=DelayModel(60, 30, 2000), loss=0.05)
    h = Harness(osc, ALL, path=path, poll_s=16, discipline=Discipline(), seed=9)
    covered = {n: 0 for n in ALL}
    width = {n: 0 for n in ALL}
    n = 0
    for truth, _l, rs in h.run(1800, 500):
        n += 1
        for src, r in zip(h.sources, rs, strict=True):
            covered[src.name] += r.earliest_ns <= truth <= r.latest_ns
            width[src.name] += r.latest_ns - r.earliest_ns
    assert n > 3000
    assert covered["skewlab"] == n
    assert width["skewlab"] < width["clockbound"] and width["skewlab"] < width["truetime"]
