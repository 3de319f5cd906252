"""Clock sources: each turns one local-clock reading into a Reading.

Registered by name in ``SOURCES``; ``make_sources`` builds them for a node from the spec.
Point sources report earliest == latest == estimate.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from skewlab.clocks.base import ClockSource, Reading, Status
from skewlab.clocks.estimator import Model, Sample, build_model, interval_at
from skewlab.clocks.sync import SyncState
from skewlab.ntp.client import NtpSample

NS_PER_S = 1_000_000_000
_NONE = Reading.none()
_SYNC = Status.SYNCHRONIZED
_FREE = Status.FREE_RUNNING


class SystemSource:
    """The node's raw clock as a point. Always answers; never claims to be synchronized."""

    name = "system"
    bounded = False

    def __init__(self, state: SyncState, **_: Any) -> None:
        self.state = state

    def read(self, local_ns: int) -> Reading:
        return Reading(local_ns, local_ns, local_ns, Status.FREE_RUNNING, None)


class NtpPointSource:
    """Node clock + latest measured NTP offset (sample and hold), a point: the classic baseline.

    SYNCHRONIZED while the latest sample is younger than ``stale_after_s``, FREE_RUNNING after
    (the held offset is still applied), UNSYNCHRONIZED (no value) before the first sample.
    """

    name = "ntp"
    bounded = False

    def __init__(self, state: SyncState, stale_after_s: float = 16.0, **_: Any) -> None:
        self.state = state
        self.stale_after_ns = int(stale_after_s * 1e9)

    def read(self, local_ns: int) -> Reading:
        s = self.state.latest
        if s is None:
            return Reading.none()
        est = local_ns + s.offset_ns
        status = (
            Status.SYNCHRONIZED
            if local_ns - s.t4_ns <= self.stale_after_ns
            else Status.FREE_RUNNING
        )
        return Reading(est, est, est, status, s.t4_ns)


def _ceil_rate(age_ns: int, rate_ppb: int) -> int:
    """age·rate rounded up (ns): growth of a bound over ``age_ns`` at ``rate_ppb``."""
    return -((-age_ns * rate_ppb) // NS_PER_S) if age_ns > 0 else 0


class TrueTimeSource:
    """Spanner's TrueTime model around the NTP estimate (sample and hold):

    estimate = local + θ;  ε = λ + max_drift · (local − T4);  [estimate − ε, estimate + ε].
    λ is the sample's root distance, max_drift 200 µs/s as in the Spanner paper. SYNCHRONIZED
    while the sample is younger than ``stale_after_s``, FREE_RUNNING (ε still growing) until
    ``unsync_after_s``, then UNSYNCHRONIZED (no value).
    """

    name = "truetime"
    bounded = True

    def __init__(
        self,
        state: SyncState,
        max_drift_us_per_s: float = 200.0,
        stale_after_s: float = 64.0,
        unsync_after_s: float = 3600.0,
        **_: Any,
    ) -> None:
        self.state = state
        self.rate_ppb = round(max_drift_us_per_s * 1000)  # 1 µs/s = 1000 ppb
        self.stale_ns = round(stale_after_s * NS_PER_S)
        self.unsync_ns = round(unsync_after_s * NS_PER_S)
        self._snap: tuple[int, int, int] | None = None  # (T4 local, θ, λ)
        state.subscribe(self._on_sample)
        if state.latest is not None:
            self._on_sample(state.latest)

    def _on_sample(self, s: NtpSample) -> None:
        self._snap = (s.t4_ns, s.offset_ns, s.root_distance_ns)

    def read(self, local_ns: int) -> Reading:
        snap = self._snap
        if snap is None:
            return Reading.none()
        t4, theta, lam = snap
        age = local_ns - t4
        if age > self.unsync_ns:
            return _NONE
        # ε = λ + max_drift·age, the growth rounded up (inlined _ceil_rate: hot path)
        eps = lam - ((-age * self.rate_ppb) // NS_PER_S) if age > 0 else lam
        est = local_ns + theta
        return Reading(est, est - eps, est + eps, _SYNC if age <= self.stale_ns else _FREE, t4)


class ClockBoundSource:
    """AWS ClockBound's clock error bound, centred on the system clock:

    CEB = |θ| + root dispersion + root delay/2 + max_drift · (local − T4), where the root delay
    includes the measured path (δ) and the dispersion the timestamp precisions, so
    root dispersion + root delay/2 = λ (the sample's root distance). estimate = local.
    max_drift defaults to 50 ppm. Status ages like ClockBound's: SYNCHRONIZED, then
    FREE_RUNNING after ``stale_after_s``, then UNSYNCHRONIZED (unknown) after ``unsync_after_s``.
    """

    name = "clockbound"
    bounded = True

    def __init__(
        self,
        state: SyncState,
        max_drift_ppm: float = 50.0,
        stale_after_s: float = 64.0,
        unsync_after_s: float = 3600.0,
        **_: Any,
    ) -> None:
        self.state = state
        self.rate_ppb = round(max_drift_ppm * 1000)
        self.stale_ns = round(stale_after_s * NS_PER_S)
        self.unsync_ns = round(unsync_after_s * NS_PER_S)
        self._snap: tuple[int, int] | None = None  # (T4 local, |θ| + λ)
        state.subscribe(self._on_sample)
        if state.latest is not None:
            self._on_sample(state.latest)

    def _on_sample(self, s: NtpSample) -> None:
        self._snap = (s.t4_ns, abs(s.offset_ns) + s.root_distance_ns)

    def read(self, local_ns: int) -> Reading:
        snap = self._snap
        if snap is None:
            return Reading.none()
        t4, base = snap
        age = local_ns - t4
        if age > self.unsync_ns:
            return _NONE
        # CEB = |θ| + λ + max_drift·age, the growth rounded up (inlined _ceil_rate: hot path)
        ceb = base - ((-age * self.rate_ppb) // NS_PER_S) if age > 0 else base
        status = _SYNC if age <= self.stale_ns else _FREE
        return Reading(local_ns, local_ns - ceb, local_ns + ceb, status, t4)


@dataclass(frozen=True, slots=True)
class _Entry:
    """An archived register sample with what is needed to map local time back to it."""

    sample: Sample  # on the monotonic timescale
    t4_local_ns: int  # T4 on the realtime clock
    gap_ns: int  # local − monotonic at T4
    epoch: int  # register resets (steps, inconsistencies) start a new epoch


class SkewlabSource:
    """skewlab's estimator: a register of NTP samples on the monotonic timescale, a hard
    feasible set of (offset, frequency) with a wander allowance, and a weighted regression
    for the point estimate (``skewlab.clocks.estimator``).

    Steps: a change of the step gap (local − monotonic, slews excluded) between samples resets
    the register; at read time a step since the latest sample drops the status to FREE_RUNNING
    (the value stays valid: it is computed from monotonic time). ``reading_at`` re-evaluates a
    past instant with the samples taken after it too (retrospective refinement).
    """

    name = "skewlab"
    bounded = True

    def __init__(
        self,
        state: SyncState,
        window: int = 64,
        wander_allowance: float = 1.0,
        max_freq_ppm: float = 1000.0,
        exchange_allowance_ppm: float = 1000.0,
        stale_after_s: float = 64.0,
        unsync_after_s: float = 3600.0,
        step_threshold_us: float = 1.0,
        reset_on_step: bool = True,
        archive: int = 4096,
        **_: Any,
    ) -> None:
        self.state = state
        self.window = max(2, int(window))
        self.w = float(wander_allowance)  # W, ns/s^1.5
        self.fmax_ppb = max_freq_ppm * 1000.0
        self.xchg_ppb = round(exchange_allowance_ppm * 1000)
        self.stale_ns = round(stale_after_s * NS_PER_S)
        self.unsync_ns = round(unsync_after_s * NS_PER_S)
        self.step_thr_ns = round(step_threshold_us * 1000)
        self.reset_on_step = reset_on_step
        self.max_archive = archive
        self.register: list[Sample] = []
        self.archive: list[_Entry] = []
        self.epoch = 0
        self.steps = 0  # steps detected at sample time
        self.resets = 0  # register resets (steps and inconsistent samples)
        self.inconsistent = 0  # samples that contradicted the model (register reset)
        self._last_step_gap: int | None = None
        # (model, step gap at the latest sample, T4 local of the latest sample)
        self._snap: tuple | None = None  # see _on_sample: what read needs, in one tuple
        state.subscribe(self._on_sample)
        if state.latest is not None:
            self._on_sample(state.latest)

    def _on_sample(self, s: NtpSample) -> None:
        gap = self.state.latest_gap_ns
        sgap = self.state.latest_step_gap_ns
        if self._last_step_gap is not None and abs(sgap - self._last_step_gap) > self.step_thr_ns:
            self.steps += 1
            if self.reset_on_step:
                self._reset()
        self._last_step_gap = sgap
        lam = s.root_distance_ns + _ceil_rate(s.delay_ns, self.xchg_ppb)
        smp = Sample(s.t4_ns - gap, s.offset_ns + gap, lam)
        self.register.append(smp)
        if len(self.register) > self.window:
            del self.register[0]
        model = build_model(self.register, self.w, self.fmax_ppb)
        if model is None:  # the new sample contradicts the model: keep only it
            self.inconsistent += 1
            self._reset()
            self.register.append(smp)
            model = build_model(self.register, self.w, self.fmax_ppb)
            assert model is not None  # one sample is always consistent
        self.archive.append(_Entry(smp, s.t4_ns, gap, self.epoch))
        if len(self.archive) > self.max_archive:
            del self.archive[0]
        (a_hi, f_hi), (a_lo, f_lo) = model.hi_lines[0], model.lo_lines[0]
        single = len(model.hi_taus) == 1 and len(model.lo_taus) == 1
        self._snap = (
            model, sgap, s.t4_ns, model.anchor_ns, model.y_ref, single,
            a_hi, f_hi, a_lo, f_lo, model.fit_a, model.fit_f, model.w,
        )  # fmt: skip

    def _reset(self) -> None:
        self.register.clear()
        self.epoch += 1
        self.resets += 1

    @property
    def model(self) -> Model | None:
        """The current forward model (None before the first sample)."""
        return None if self._snap is None else self._snap[0]

    def read(self, local_ns: int) -> Reading:
        snap = self._snap
        if snap is None:
            return Reading.none()
        model, sgap0, t4, anchor, y_ref, single, a_hi, f_hi, a_lo, f_lo, fa, ff, w = snap
        clock = self.state.clock
        if clock is None or clock.oscillator.gapless:
            mono = local_ns
            stepped = sgap0 != 0
        else:
            gap, sgap = clock.gaps_ns()
            mono = local_ns - gap
            stepped = not -self.step_thr_ns <= sgap - sgap0 <= self.step_thr_ns
        age = mono - anchor
        if age > self.unsync_ns:
            return _NONE
        status = _FREE if stepped or age > self.stale_ns else _SYNC
        if not single or age < 0:
            lo_ns, est_ns, hi_ns = model.bounds_at(mono)
            return Reading(est_ns, lo_ns, hi_ns, status, t4)
        # Model.bounds_at inlined for the common one-piece envelope (hot path): same formula,
        # rounded outward by at least 1 ns through int() truncation.
        tau = age / NS_PER_S
        ww = w * tau**1.5 if w else 0.0
        hi = a_hi + f_hi * tau + ww
        lo = a_lo + f_lo * tau - ww
        est = fa + ff * tau
        est = lo if est < lo else (hi if est > hi else est)
        base = mono + y_ref
        return Reading(base + int(est), base + int(lo) - 2, base + int(hi) + 2, status, t4)

    def reading_at(self, past_local_ns: int, past_mono_ns: int | None = None) -> Reading:
        """The interval for a past local reading, using samples before *and after* it.

        Pass the monotonic reading taken with it (``past_mono_ns``) for an exact mapping;
        otherwise the gap of the nearest earlier sample is used, widened by the discipline's
        maximum slew over the distance (a step in between would not be seen)."""
        arch = self.archive
        if not arch:
            return Reading.none()
        widen = 0
        if past_mono_ns is None:
            j = max(0, bisect_right([e.t4_local_ns for e in arch], past_local_ns) - 1)
            past_mono_ns = past_local_ns - arch[j].gap_ns
            clock = self.state.clock
            disc = getattr(getattr(clock, "oscillator", None), "discipline", None)
            if disc is not None:
                dist = abs(past_local_ns - arch[j].t4_local_ns)
                widen = _ceil_rate(dist, round(disc.max_slew_ppb))
        ms = [e.sample.m_ns for e in arch]
        i = bisect_right(ms, past_mono_ns)
        near = arch[max(0, i - 1)] if i > 0 else arch[0]
        lo_i = max(0, i - self.window // 2)
        chosen = [e for e in arch[lo_i : lo_i + self.window] if e.epoch == near.epoch]
        if past_mono_ns - max(e.sample.m_ns for e in chosen) > self.unsync_ns:
            return Reading.none()
        r = interval_at([e.sample for e in chosen], past_mono_ns, self.w, self.fmax_ppb)
        if r is None:
            return Reading.none()
        lo, est, hi = r
        bracketed = chosen[0].sample.m_ns <= past_mono_ns <= chosen[-1].sample.m_ns
        status = Status.SYNCHRONIZED if bracketed else Status.FREE_RUNNING
        return Reading(est, lo - widen, hi + widen, status, near.t4_local_ns)


SourceFactory = Callable[..., ClockSource]

SOURCES: dict[str, SourceFactory] = {
    "system": SystemSource,
    "ntp": NtpPointSource,
    "truetime": TrueTimeSource,
    "clockbound": ClockBoundSource,
    "skewlab": SkewlabSource,
}


def make_sources(
    names: list[str], state: SyncState, params: Mapping[str, Mapping[str, Any]] | None = None
) -> list[ClockSource]:
    """Instantiate the named sources over one node's sync state."""
    params = params or {}
    out: list[ClockSource] = []
    for n in names:
        try:
            factory = SOURCES[n]
        except KeyError:
            raise ValueError(f"unknown clock source {n!r}; known: {', '.join(SOURCES)}") from None
        out.append(factory(state, **dict(params.get(n, {}))))
    return out


# Sources backed by real host services (ChronoTick, chrony, ClockBound): read the host clock.
from skewlab.clocks.external import EXTERNAL_SOURCES  # noqa: E402

SOURCES.update(EXTERNAL_SOURCES)
