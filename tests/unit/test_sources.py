"""Each source's formula on hand-computed cases, statuses on sync loss, no invented values."""

from __future__ import annotations

import pytest

from skewlab.clocks.base import Status
from skewlab.clocks.sources import SOURCES, make_sources
from skewlab.clocks.sync import SyncState
from skewlab.ntp.sample import NtpSample

S = 1_000_000_000
MS = 1_000_000
T4 = 1_000 * S


def sample(t4: int, theta: int, lam: int, delay: int = 0) -> NtpSample:
    """A sample with a chosen offset θ and root distance λ (the fields the sources use)."""
    return NtpSample("test", t4 - delay, 0, 0, t4, theta, delay, lam, 0, 0, 1, 0, -20)


def one(name: str, **params: float):
    state = SyncState()
    src = make_sources([name], state, {name: params})[0]
    return state, src


def test_registry_has_the_five_sources() -> None:
    assert {"system", "ntp", "truetime", "clockbound", "skewlab"} <= set(SOURCES)
    with pytest.raises(ValueError, match="unknown clock source"):
        make_sources(["nope"], SyncState())


@pytest.mark.parametrize("name", ["ntp", "truetime", "clockbound", "skewlab"])
def test_no_value_before_the_first_sample(name: str) -> None:
    _, src = one(name)
    r = src.read(T4)
    assert r.status == Status.UNSYNCHRONIZED
    assert (r.estimate_ns, r.earliest_ns, r.latest_ns) == (None, None, None)


def test_truetime_formula_by_hand() -> None:
    state, src = one("truetime")
    state.add(sample(T4, theta=2 * MS, lam=1 * MS))
    local = T4 + 10 * S
    r = src.read(local)
    # ε = λ + 200 µs/s · 10 s = 1 ms + 2 ms
    eps = 1 * MS + 10 * 200_000
    assert r.estimate_ns == local + 2 * MS
    assert (r.earliest_ns, r.latest_ns) == (local + 2 * MS - eps, local + 2 * MS + eps)
    assert r.status == Status.SYNCHRONIZED
    assert r.as_of_ns == T4


def test_clockbound_formula_by_hand() -> None:
    state, src = one("clockbound")
    state.add(sample(T4, theta=-3 * MS, lam=1 * MS))
    local = T4 + 20 * S
    r = src.read(local)
    # CEB = |θ| + λ + 50 ppm · 20 s = 3 ms + 1 ms + 1 ms, centred on the system clock
    ceb = 3 * MS + 1 * MS + 20 * 50_000
    assert r.estimate_ns == local
    assert (r.earliest_ns, r.latest_ns) == (local - ceb, local + ceb)


def test_ntp_point_is_sample_and_hold() -> None:
    state, src = one("ntp")
    state.add(sample(T4, theta=-3 * MS, lam=1 * MS))
    r = src.read(T4 + S)
    assert r.estimate_ns == r.earliest_ns == r.latest_ns == T4 + S - 3 * MS


@pytest.mark.parametrize("name", ["truetime", "clockbound", "skewlab"])
def test_status_ages_synchronized_free_running_unsynchronized(name: str) -> None:
    state, src = one(name, stale_after_s=64, unsync_after_s=3600)
    state.add(sample(T4, theta=0, lam=1 * MS))
    fresh, stale, dead = (src.read(T4 + a * S) for a in (10, 100, 4000))
    assert fresh.status == Status.SYNCHRONIZED
    assert stale.status == Status.FREE_RUNNING
    assert stale.latest_ns - stale.earliest_ns > fresh.latest_ns - fresh.earliest_ns
    assert dead.status == Status.UNSYNCHRONIZED and dead.estimate_ns is None


def test_skewlab_two_samples_by_hand() -> None:
    # W = J = 0, no exchange allowance: two samples y = 0 ± L at m = 0 and m = T. The feasible
    # (a, f) at the anchor T has the vertex a = L, f = 2L/T, so at τ after T the bound is
    # L + 2L·τ/T on each side.
    lam, T = 100_000, 10 * S
    state, src = one("skewlab", wander_allowance=0.0, exchange_allowance_ppm=0.0,
                     freq_change_ppm=0.0, freq_rate_ppb_per_s=0.0)  # fmt: skip
    state.add(sample(T4, 0, lam))
    state.add(sample(T4 + T, 0, lam))
    tau = 5 * S
    r = src.read(T4 + T + tau)
    half = lam + 2 * lam * tau // T
    local = T4 + T + tau
    assert r.estimate_ns == local
    # bounds are rounded outward by 1-2 ns
    assert local - half - 2 <= r.earliest_ns <= local - half - 1
    assert local + half + 1 <= r.latest_ns <= local + half + 2


def test_skewlab_two_samples_by_hand_with_a_frequency_change_allowance() -> None:
    # As above with J = 1 ppm (1000 ns/s): the older sample (d = −T) now allows |a − f·T| ≤
    # L + J·T, so the vertex is a = L, f = 2L/T + J, and the forward bound widens by J·τ too:
    # L + (2L/T + J)·τ + J·τ = 100 + 100 + 2·5 µs = 210 µs on each side.
    lam, T = 100_000, 10 * S
    state, src = one("skewlab", wander_allowance=0.0, exchange_allowance_ppm=0.0,
                     freq_change_ppm=1.0, freq_rate_ppb_per_s=0.0)  # fmt: skip
    state.add(sample(T4, 0, lam))
    state.add(sample(T4 + T, 0, lam))
    tau = 5 * S
    r = src.read(T4 + T + tau)
    local = T4 + T + tau
    half = 210_000
    assert local - half - 2 <= r.earliest_ns <= local - half - 1
    assert local + half + 1 <= r.latest_ns <= local + half + 2


def test_skewlab_two_samples_by_hand_with_a_frequency_rate_allowance() -> None:
    # W = J = 0, R = 10 ppb/s (10 ns/s²): the older sample allows |a − f·T| ≤ L + R·T²/2, so the
    # vertex is a = L, f = 2L/T + R·T/2, and the forward bound adds R·τ²/2:
    # L + (2L/T + R·T/2)·τ + R·τ²/2 = 100 µs + 100 µs + 250 ns + 125 ns on each side.
    lam, T = 100_000, 10 * S
    state, src = one("skewlab", wander_allowance=0.0, exchange_allowance_ppm=0.0,
                     freq_change_ppm=0.0, freq_rate_ppb_per_s=10.0)  # fmt: skip
    state.add(sample(T4, 0, lam))
    state.add(sample(T4 + T, 0, lam))
    r = src.read(T4 + T + 5 * S)
    local = T4 + T + 5 * S
    half = 200_375
    assert local - half - 2 <= r.earliest_ns <= local - half - 1
    assert local + half + 1 <= r.latest_ns <= local + half + 2


def test_skewlab_retrospective_refinement_by_hand() -> None:
    lam, T = 100_000, 10 * S
    state, src = one("skewlab", wander_allowance=0.0, exchange_allowance_ppm=0.0,
                     freq_change_ppm=0.0, freq_rate_ppb_per_s=0.0)  # fmt: skip
    state.add(sample(T4, 0, lam))
    state.add(sample(T4 + T, 0, lam))
    past = T4 + T + T // 2
    live = src.read(past)
    state.add(sample(T4 + 2 * T, 0, lam))
    later = src.reading_at(past)
    # Bracketed by samples at T and 2T (and 0): the best line is flat, half-width L.
    assert later.earliest_ns == past - lam - 1 and later.latest_ns == past + lam + 1
    assert later.latest_ns - later.earliest_ns < live.latest_ns - live.earliest_ns
    assert later.status == Status.SYNCHRONIZED


def test_skewlab_wander_allowance_grows_the_bound() -> None:
    lam, T = 100_000, 10 * S
    widths = []
    for w in (0.0, 10.0):
        state, src = one("skewlab", wander_allowance=w, exchange_allowance_ppm=0.0,
                         freq_change_ppm=0.0, freq_rate_ppb_per_s=0.0)  # fmt: skip
        state.add(sample(T4, 0, lam))
        state.add(sample(T4 + T, 0, lam))
        r = src.read(T4 + T + 4 * S)
        widths.append((r.latest_ns - r.earliest_ns) // 2)
    # with W the sample at distance T is looser by W·T^1.5 and the read gains W·τ^1.5;
    # both only ever widen the interval
    assert widths[1] > widths[0] + 10 * 4**1.5


def test_skewlab_step_check_uses_the_readings_own_instant() -> None:
    # A +5 ms realtime step at STEP. A reading taken just before the step must be judged at
    # its own host instant (host_ns), even when the source is asked after the step happened.
    from skewlab.clocks.oscillator import ClockFault, NodeClock, Oscillator
    from skewlab.timebase import VirtualClock

    step_at = T4 + 10 * S
    osc = Oscillator(
        offset_ns=0, drift_ppb=0, t0_ns=0, faults=(ClockFault("step", step_at, 5 * MS),)
    )
    host = VirtualClock(T4)
    clock = NodeClock(osc, host)
    state = SyncState(clock=clock)
    src = make_sources(["skewlab"], state)[0]
    state.add(sample(T4, 0, 100_000))  # gaps read at T4: no step yet
    host.set(step_at + S)  # the source is consulted after the step
    before = step_at - MS
    r_before = src.read(osc.local_at(before), before)
    assert r_before.status == Status.SYNCHRONIZED
    assert r_before.earliest_ns <= before <= r_before.latest_ns
    after = step_at + MS
    r_after = src.read(osc.local_at(after), after)
    assert r_after.status == Status.FREE_RUNNING  # the step is seen at the reading's instant
    assert r_after.earliest_ns <= after <= r_after.latest_ns
    # without host_ns the source reads the clock now (after the step) and mislabels `before`
    assert src.read(osc.local_at(before)).status == Status.FREE_RUNNING
