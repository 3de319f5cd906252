"""Clock sources: each turns one local-clock reading into a Reading.

Registered by name in ``SOURCES``; ``make_sources`` builds them for a node from the spec.
Point sources report earliest == latest == estimate.

Every formula has one home: a module-level kernel (``_aged_status``; ``_aged_interval`` for
TrueTime and ClockBound; ``_skewlab_age`` and the estimator's ``forward_interval``) written
with arithmetic only, so the same code computes one reading on Python ints (``read``, the
worker's hot path, one or two kernel calls) and many on numpy int64 arrays (``read_many``, the
simulator). A source's state between two NTP samples is one immutable
value (``snapshot()``); ``read_many`` evaluates readings against a list of such snapshots.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from skewlab.clocks.base import ClockSource, Reading, Readings, Status
from skewlab.clocks.estimator import (
    Model,
    Sample,
    build_model,
    feasible_polygon,
    forward_interval,
    interval_near,
    intervals_arrays_near,
    intervals_near,
    prepare_group,
)
from skewlab.clocks.external import EXTERNAL_SOURCES
from skewlab.clocks.sync import SyncState
from skewlab.ntp.sample import NtpSample

NS_PER_S = 1_000_000_000
_NONE = Reading.none()
_SYNC_CODE = int(Status.SYNCHRONIZED)
_FREE_CODE = int(Status.FREE_RUNNING)
_BY_CODE = (Status.UNSYNCHRONIZED, Status.FREE_RUNNING, Status.SYNCHRONIZED)
_SYNC = Status.SYNCHRONIZED
_FREE = Status.FREE_RUNNING
_tuple_new = tuple.__new__  # Reading is a named tuple: construct it without its Python __new__


# -- formulas, one home each: arithmetic only, on Python ints or numpy int64 arrays ----------


def _aged_status(age, stale_ns):  # type: ignore[no-untyped-def]
    """Status code of a reading standing on a sample ``age`` ns old: SYNCHRONIZED (2) while
    age ≤ stale, FREE_RUNNING (1) after. (Validity, age ≤ unsync, is checked by the caller.)"""
    return _SYNC_CODE - (age > stale_ns)


def _aged_interval(centre, base, age, rate_ppb, stale_ns):  # type: ignore[no-untyped-def]
    """A bound that grows with the age of its sample: half-width ε = base + ⌈max(age, 0)·rate
    /1e9⌉ around ``centre`` → (centre, centre − ε, centre + ε, status code: SYNCHRONIZED while
    age ≤ stale, FREE_RUNNING after). TrueTime (centre local + θ, base λ) and ClockBound
    (centre local, base |θ| + λ). The negative growth is cut by multiplying with the
    comparison: no call, so one kernel call is the whole cost of a scalar read."""
    g = -((-age * rate_ppb) // NS_PER_S)
    eps = base + g * (g > 0)
    return centre, centre - eps, centre + eps, _SYNC_CODE - (age > stale_ns)


def _growth(age, rate_ppb):  # type: ignore[no-untyped-def]
    """⌈max(age, 0)·rate/1e9⌉ (ns): the growth of an aged bound (:func:`_aged_interval`)."""
    return _aged_interval(0, 0, age, rate_ppb, 0)[2]


def _skewlab_age(local, gap, step_gap, step_gap0, thr_ns, anchor, stale_ns):  # type: ignore[no-untyped-def]
    """(monotonic reading, age since the model's anchor, status code, stepped) of a local
    reading, from the node clock's gaps at that instant (``gap`` None: a gapless clock,
    monotonic = local). FREE_RUNNING (1) after a step since the latest sample (step gap moved
    beyond ``thr_ns``: ``stepped``) or once stale, else SYNCHRONIZED (2)."""
    if gap is None:
        mono = local
        stepped = step_gap0 != 0
    else:
        mono = local - gap
        stepped = abs(step_gap - step_gap0) > thr_ns
    age = mono - anchor
    return mono, age, _SYNC_CODE - (stepped | (age > stale_ns)), stepped


def _np():  # type: ignore[no-untyped-def]
    import numpy as np

    return np


def _no_readings(n: int) -> Readings:
    np = _np()
    z = np.zeros(n, dtype=np.int64)
    return Readings(z, z.copy(), z.copy(), np.zeros(n, dtype=np.int8), np.zeros(n, dtype=bool))


def _snap_columns(snaps: Sequence[Any], k, width: int):  # type: ignore[no-untyped-def]
    """Per-reading snapshot fields (rows with k < 0, or on a None snapshot, get 0 and
    have=False)."""
    np = _np()
    n = len(k)
    if not snaps:
        return [np.zeros(n, dtype=np.int64) for _ in range(width)], np.zeros(n, dtype=bool)
    present = np.array([sn is not None for sn in snaps], dtype=bool)
    rows = np.array([sn if sn is not None else (0,) * width for sn in snaps], dtype=np.int64)
    rows = rows.reshape(len(snaps), width)
    kk = np.where(k >= 0, k, 0)
    have = (k >= 0) & present[kk]
    return [rows[kk, j] for j in range(width)], have


def _aged_readings(values, age, have, unsync_ns: int) -> Readings:  # type: ignore[no-untyped-def]
    """Readings from a kernel's (estimate, earliest, latest, status) arrays: no value past
    ``unsync_ns``."""
    np = _np()
    est, lo, hi, status = values
    valid = have & (age <= unsync_ns)
    st = np.asarray(status, dtype=np.int8)
    st[~valid] = 0
    return Readings(est, lo, hi, st, valid)


def _clip_age(age, cap_ns: int):  # type: ignore[no-untyped-def]
    """Ages clipped to [−1, cap + 1] so age·rate stays inside int64; every comparison with
    stale/unsync thresholds (≤ cap) is unchanged, and a clipped reading is void anyway."""
    return _np().clip(age, -1, max(cap_ns, 0) + 1)


class SystemSource:
    """The node's raw clock as a point. Always answers; never claims to be synchronized."""

    name = "system"
    bounded = False

    def __init__(self, state: SyncState, **_: Any) -> None:
        self.state = state

    def read(self, local_ns: int, host_ns: int | None = None) -> Reading:
        return _tuple_new(Reading, (local_ns, local_ns, local_ns, _FREE, None))

    def snapshot(self) -> None:
        """The state a reading stands on: none (the raw clock)."""
        return None

    def read_many(self, snaps: Sequence[Any], k: Any, local: Any, gap: Any = None,
                  step_gap: Any = None) -> Readings:  # fmt: skip
        """``read`` of many local readings (numpy int64)."""
        np = _np()
        n = len(local)
        st = np.full(n, _FREE_CODE, dtype=np.int8)
        return Readings(local, local, local, st, np.ones(n, dtype=bool))


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

    def snapshot(self) -> tuple[int, int] | None:
        """(T4 local, θ) of the latest sample: what a reading stands on."""
        s = self.state.latest
        return None if s is None else (s.t4_ns, s.offset_ns)

    def read(self, local_ns: int, host_ns: int | None = None) -> Reading:
        s = self.state.latest
        if s is None:
            return _NONE
        est = local_ns + s.offset_ns
        t4 = s.t4_ns
        status = _BY_CODE[_aged_status(local_ns - t4, self.stale_after_ns)]
        return _tuple_new(Reading, (est, est, est, status, t4))

    def read_many(self, snaps: Sequence[Any], k: Any, local: Any, gap: Any = None,
                  step_gap: Any = None) -> Readings:  # fmt: skip
        """``read`` of many local readings; reading i stands on ``snaps[k[i]]`` (k < 0: none)."""
        np = _np()
        (t4, theta), have = _snap_columns(snaps, k, 2)
        est = local + theta
        st = np.asarray(_aged_status(local - t4, self.stale_after_ns), dtype=np.int8)
        st[~have] = 0
        return Readings(est, est, est, st, have)


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

    def snapshot(self) -> tuple[int, int, int] | None:
        """(T4 local, θ, λ) of the latest sample: what a reading stands on."""
        return self._snap

    def read(self, local_ns: int, host_ns: int | None = None) -> Reading:
        snap = self._snap
        if snap is None:
            return _NONE
        t4, theta, lam = snap
        age = local_ns - t4
        if age > self.unsync_ns:
            return _NONE
        est, lo, hi, st = _aged_interval(local_ns + theta, lam, age, self.rate_ppb, self.stale_ns)
        return _tuple_new(Reading, (est, lo, hi, _BY_CODE[st], t4))

    def read_many(self, snaps: Sequence[Any], k: Any, local: Any, gap: Any = None,
                  step_gap: Any = None) -> Readings:  # fmt: skip
        """``read`` of many local readings; reading i stands on ``snaps[k[i]]`` (k < 0: none)."""
        (t4, theta, lam), have = _snap_columns(snaps, k, 3)
        age = _clip_age(local - t4, self.unsync_ns)
        values = _aged_interval(local + theta, lam, age, self.rate_ppb, self.stale_ns)
        return _aged_readings(values, age, have, self.unsync_ns)


class ClockBoundSource:
    """AWS ClockBound's clock error bound, centred on the system clock:

    CEB = |offset| + root dispersion + root delay/2 + max_drift · (local − T4), where the root
    delay includes the measured path (δ) and the dispersion the timestamp precisions, so
    root dispersion + root delay/2 = λ (the sample's root distance). estimate = local.
    |offset| is what ClockBound reads from the daemon: on a disciplined node (a host running
    chrony) the part of the latest measured offset the servo has not yet slewed away
    (``Discipline.remaining_at``, shrinking linearly to 0 over the servo's phase time, aged on
    the system clock as ClockBound ages its bound, ``Discipline.segment``); on a free node
    nothing corrects the clock, so it is the sample's whole |θ|. max_drift defaults to 50 ppm.
    Status ages like ClockBound's: SYNCHRONIZED, then FREE_RUNNING after ``stale_after_s``, then
    UNSYNCHRONIZED (unknown) after ``unsync_after_s``.
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
        # (T4 local, λ + |θ| or λ, |p| (ns), T on the realtime clock (ns; 0: no slewing),
        # local at the slew's start)
        self._snap: tuple[int, int, int, int, int] | None = None
        state.subscribe(self._on_sample)
        if state.latest is not None:
            self._on_sample(state.latest)

    def _on_sample(self, s: NtpSample) -> None:
        disc = getattr(getattr(self.state.clock, "oscillator", None), "discipline", None)
        seg = None if disc is None else getattr(disc, "segment", lambda: None)()
        if seg is None:  # nothing slews the clock: the whole measured offset stays
            self._snap = (s.t4_ns, abs(s.offset_ns) + s.root_distance_ns, 0, 0, 0)
            return
        # the servo subscribed first, so its latest segment is this sample's: the local
        # instant it started at is its monotonic start + the correction then + the step gap
        m_k, c_k, p, t = seg
        start = m_k + c_k + self.state.latest_step_gap_ns
        self._snap = (s.t4_ns, s.root_distance_ns, abs(p), t, start)

    def snapshot(self) -> tuple[int, int, int, int, int] | None:
        """(T4 local, base, |p|, T, slew start local) of the latest sample: base is λ + |θ| on
        a free node, λ on a disciplined one, whose remaining offset |p|·(1 − elapsed/T) is added
        at read time."""
        return self._snap

    def read(self, local_ns: int, host_ns: int | None = None) -> Reading:
        snap = self._snap
        if snap is None:
            return _NONE
        t4, base, p, t, start = snap
        age = local_ns - t4
        if age > self.unsync_ns:
            return _NONE
        if t:
            base += _remaining(p, local_ns - start, t)
        est, lo, hi, st = _aged_interval(local_ns, base, age, self.rate_ppb, self.stale_ns)
        return _tuple_new(Reading, (est, lo, hi, _BY_CODE[st], t4))

    def read_many(self, snaps: Sequence[Any], k: Any, local: Any, gap: Any = None,
                  step_gap: Any = None) -> Readings:  # fmt: skip
        """``read`` of many local readings; reading i stands on ``snaps[k[i]]`` (k < 0: none)."""
        np = _np()
        (t4, base, p, t, start), have = _snap_columns(snaps, k, 5)
        age = _clip_age(local - t4, self.unsync_ns)
        slewed = t > 0
        if slewed.any():
            rem = _remaining(p, local - start, np.where(slewed, t, 1), np)
            base = base + np.where(slewed, rem, 0)
        values = _aged_interval(local, base, age, self.rate_ppb, self.stale_ns)
        return _aged_readings(values, age, have, self.unsync_ns)


def _remaining(p, elapsed, t, xp=None):  # type: ignore[no-untyped-def]
    """What is left of a phase correction |p| (ns) slewed away linearly over T ns, ``elapsed``
    ns after it started, rounded up: ⌈|p| − |p|·min(max(elapsed, 0), T)/T⌉ (ns). One reading
    (``xp`` None) or many (``xp`` numpy), the same float operations."""
    if xp is None:
        done = 0 if elapsed < 0 else (elapsed if elapsed < t else t)
        return -int((p * (done / t) - p) // 1)
    done = xp.minimum(xp.maximum(elapsed, 0), t)
    return xp.ceil(p - p * (done / t)).astype(xp.int64)


@dataclass(frozen=True, slots=True)
class _Entry:
    """An archived register sample with what is needed to map local time back to it."""

    sample: Sample  # on the monotonic timescale
    t4_local_ns: int  # T4 on the realtime clock
    gap_ns: int  # local − monotonic at T4
    epoch: int  # register resets (steps, inconsistencies) start a new epoch


@dataclass(frozen=True, slots=True)
class _Chosen:
    """The samples ``reading_at`` uses for one (window start, epoch) of one archive snapshot,
    with what every query on them shares (memoized per snapshot)."""

    samples: tuple[Sample, ...]
    max_m_ns: int  # latest sample instant (monotonic)
    first_m_ns: int  # first and last sample instants: a query between them is bracketed
    last_m_ns: int
    group: list = field(default_factory=list)  # [estimator.Group] once prepared (lazily)


class _ArchiveView:
    """An immutable snapshot of the archive, published at sample time: the entries and their
    time lists (built once per sample, not per read) and the memoized sample groups."""

    __slots__ = ("_arrays", "entries", "groups", "m_ns", "sorted", "t4_local_ns")

    def __init__(self, entries: tuple[_Entry, ...], t4_local_ns: list[int], m_ns: list[int],
                 ascending: bool | None = None) -> None:  # fmt: skip
        self.entries = entries
        self.t4_local_ns = t4_local_ns  # entries' T4 on the realtime clock, archive order
        self.m_ns = m_ns  # entries' T4 on the monotonic timescale, archive order
        # (window start, end, epoch) → samples
        self.groups: dict[tuple[int, int, int], _Chosen | None] = {}
        # Both lists ascending (no backward step of the realtime clock in the archive): then
        # numpy's searchsorted(side="right") is exactly bisect_right and selection vectorizes.
        # The archive keeps count of its descents (``ascending``); else checked here.
        self.sorted = ascending if ascending is not None else (
            all(a <= b for a, b in pairwise(t4_local_ns))
            and all(a <= b for a, b in pairwise(m_ns))
        )  # fmt: skip
        self._arrays: tuple | None = None

    def arrays(self) -> tuple:
        """(T4 local, gap, T4 monotonic, epoch) as int64 arrays, built on first use."""
        if self._arrays is None:
            import numpy as np

            e = self.entries
            self._arrays = (
                np.array(self.t4_local_ns, dtype=np.int64),
                np.array([x.gap_ns for x in e], dtype=np.int64),
                np.array(self.m_ns, dtype=np.int64),
                np.array([x.epoch for x in e], dtype=np.int64),
            )
        return self._arrays


BATCH_MIN = 8  # readings_at: groups with fewer queries use the scalar interval_near


class SkewlabSource:
    """skewlab's estimator: a register of NTP samples on the monotonic timescale, a hard
    feasible set of (offset, frequency) with a wander allowance, and a weighted regression
    for the point estimate (``skewlab.clocks.estimator``).

    Steps: a change of the step gap (local − monotonic, slews excluded) between samples resets
    the register; at read time a step since the latest sample drops the status to FREE_RUNNING
    (the value stays valid: it is computed from monotonic time). ``reading_at`` re-evaluates a
    past instant with the samples taken after it too (retrospective refinement);
    ``readings_at`` does the same for many instants at once (bit-identical, vectorized).
    """

    name = "skewlab"
    bounded = True

    def __init__(
        self,
        state: SyncState,
        window: int = 64,
        wander_allowance: float = 1.0,
        freq_change_ppm: float = 1.0,
        freq_rate_ppb_per_s: float = 10.0,
        step_freq_change_ppm: float = 100.0,
        max_freq_ppm: float = 1000.0,
        exchange_allowance_ppm: float = 1000.0,
        stale_after_s: float = 64.0,
        unsync_after_s: float = 3600.0,
        step_threshold_us: float = 1.0,
        reset_on_step: bool = True,
        archive: int = 4096,
        retro_grid_ms: float = 1.0,
        tension: float = 0.5,
        settle_samples: int = 4,
        **_: Any,
    ) -> None:
        self.state = state
        self.window = max(2, int(window))
        # contradiction short of emptiness: the register must stay consistent with its
        # allowances (λ, J) scaled by this factor, else it restarts from its newest quarter
        # (0: off); after such a restart, or a reset on an inconsistent sample, the status stays
        # FREE_RUNNING until the register holds settle_samples again
        self.tension = float(tension)
        self.settle = max(1, int(settle_samples))
        self.tensions = 0  # restarts for tension
        self._unsettled = False  # restarted on a contradiction and not yet settled
        self.w = float(wander_allowance)  # W, ns/s^1.5
        self.j = float(freq_change_ppm) * 1000.0  # J, ppb: frequency steps within the window
        self.r = float(freq_rate_ppb_per_s)  # R, ppb/s: how fast the frequency may move
        # added to J for readings after a step not yet seen by a sample: a step (a VM's live
        # migration) may come with any frequency change of the oscillator under it
        self.step_j = float(step_freq_change_ppm) * 1000.0
        self.fmax_ppb = max_freq_ppm * 1000.0
        self.xchg_ppb = round(exchange_allowance_ppm * 1000)
        self.stale_ns = round(stale_after_s * NS_PER_S)
        self.unsync_ns = round(unsync_after_s * NS_PER_S)
        self.step_thr_ns = round(step_threshold_us * 1000)
        self.reset_on_step = reset_on_step
        self.max_archive = archive
        # retrospective readings are evaluated at anchors on this grid (estimator.interval_near)
        self.grid_ns = max(1, round(retro_grid_ms * 1_000_000))
        self.register: list[Sample] = []
        self.archive: list[_Entry] = []
        self._t4s: list[int] = []  # archive's T4 local, kept in step with it
        self._ms: list[int] = []  # archive's T4 monotonic, kept in step with it
        self._descents = 0  # adjacent archive pairs whose T4 (local or monotonic) goes back
        self._view: _ArchiveView | None = None  # snapshot read by reading_at / readings_at
        self.epoch = 0
        self.steps = 0  # steps detected at sample time
        self.resets = 0  # register resets (steps and inconsistent samples)
        self.inconsistent = 0  # samples that contradicted the model (register reset)
        self._last_step_gap: int | None = None
        # (model, step gap at the latest sample, T4 local of the latest sample, ...)
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
        lam = s.root_distance_ns + _growth(s.delay_ns, self.xchg_ppb)
        smp = Sample(s.t4_ns - gap, s.offset_ns + gap, lam)
        self.register.append(smp)
        if len(self.register) > self.window:
            del self.register[0]
        last = self.register[-1]
        poly = feasible_polygon(self.register, last.m_ns, last.y_ns, self.w, self.fmax_ppb,
                                self.j, self.r)  # fmt: skip
        model = build_model(self.register, self.w, self.fmax_ppb, self.j, self.r, poly)
        if model is None:  # the new sample contradicts the model: keep only it
            self.inconsistent += 1
            self._reset()
            self._unsettled = True
            self.register.append(smp)
            model = build_model(self.register, self.w, self.fmax_ppb, self.j, self.r)
            assert model is not None  # one sample is always consistent
        elif self.tension > 0 and len(self.register) >= 4 and self._tense(poly):
            self.tensions += 1
            keep = self.register[-max(2, len(self.register) // 4) :]
            self._reset()
            self._unsettled = True
            self.register.extend(keep)
            model = build_model(self.register, self.w, self.fmax_ppb, self.j, self.r)
            if model is None:  # cannot happen (a subset of a consistent register), but be safe
                self._reset()
                self.register.append(smp)
                model = build_model(self.register, self.w, self.fmax_ppb, self.j, self.r)
                assert model is not None
        if self._t4s and (s.t4_ns < self._t4s[-1] or smp.m_ns < self._ms[-1]):
            self._descents += 1  # an adjacent pair out of order (a backward step)
        self.archive.append(_Entry(smp, s.t4_ns, gap, self.epoch))
        self._t4s.append(s.t4_ns)
        self._ms.append(smp.m_ns)
        if len(self.archive) > self.max_archive:
            if self._t4s[1] < self._t4s[0] or self._ms[1] < self._ms[0]:
                self._descents -= 1
            del self.archive[0], self._t4s[0], self._ms[0]
        self._view = _ArchiveView(tuple(self.archive), list(self._t4s), list(self._ms),
                                  self._descents == 0)  # fmt: skip
        if self._unsettled and len(self.register) >= self.settle:
            self._unsettled = False
        (a_hi, f_hi), (a_lo, f_lo) = model.hi_lines[0], model.lo_lines[0]
        single = len(model.hi_taus) == 1 and len(model.lo_taus) == 1
        self._snap = (
            model, sgap, s.t4_ns, model.anchor_ns, model.y_ref, single,
            a_hi, f_hi, a_lo, f_lo, model.fit_a, model.fit_f, model.w, model.j, model.r,
            self.unsync_ns, -1 if self._unsettled else self.stale_ns,
            self.step_thr_ns,
        )  # fmt: skip

    def _tense(self, poly: list) -> bool:
        """True when the register is consistent with its allowances but not with them scaled
        by ``tension`` (λ, J and R; the wander allowance kept): its samples strain the model —
        a frequency change beyond J shows this way long before the region empties."""
        k = self.tension
        tight = [Sample(x.m_ns, x.y_ns, round(x.lam_ns * k)) for x in self.register]
        last = tight[-1]
        # the tighter polygon lies inside ``poly`` (every constraint only narrows): clip that
        return not feasible_polygon(tight, last.m_ns, last.y_ns, self.w, self.fmax_ppb,
                                    self.j * k, self.r * k, start=poly)  # fmt: skip

    def _reset(self) -> None:
        self.register.clear()
        self.epoch += 1
        self.resets += 1

    @property
    def model(self) -> Model | None:
        """The current forward model (None before the first sample)."""
        return None if self._snap is None else self._snap[0]

    def snapshot(self) -> tuple | None:
        """What a reading stands on between two samples (the forward model and the step gap at
        the latest sample), one immutable tuple; None before the first sample."""
        return self._snap

    def read(self, local_ns: int, host_ns: int | None = None) -> Reading:
        snap = self._snap
        if snap is None:
            return _NONE
        (model, sgap0, t4, anchor, y_ref, single, a_hi, f_hi, a_lo, f_lo, fa, ff, w, j, r,
         unsync, stale, thr) = snap  # fmt: skip
        clock = self.state.clock
        if clock is None or clock.oscillator.gapless:
            gap = sgap = None
        else:
            # the gaps at the reading's own instant: a second clock read could land on the
            # other side of a step or strobe edge and pair this value with the wrong status
            gap, sgap = clock.gaps_ns() if host_ns is None else clock.oscillator.gaps_at(host_ns)
        mono, age, st, stepped = _skewlab_age(local_ns, gap, sgap, sgap0, thr, anchor, stale)
        if age > unsync:
            return _NONE
        if age < 0:
            tau = 0.0
        else:
            tau = age / 1_000_000_000  # NS_PER_S as a constant (no global lookup)
            if not single:
                a_hi, f_hi, a_lo, f_lo = model.lines_at(tau)
        if stepped:  # a step (a VM migration?) may have come with any frequency change
            j = j + self.step_j
        lo_ns, est_ns, hi_ns = forward_interval(mono + y_ref, tau, a_hi, f_hi, a_lo, f_lo, fa,
                                                ff, w, j, r)  # fmt: skip
        # tuple.__new__ builds the same Reading without the named tuple's Python-level __new__
        return _tuple_new(Reading, (est_ns, lo_ns, hi_ns, _BY_CODE[st], t4))

    def read_many(self, snaps: Sequence[Any], k: Any, local: Any, gap: Any = None,
                  step_gap: Any = None) -> Readings:  # fmt: skip
        """``read`` of many local readings; reading i stands on ``snaps[k[i]]`` (k < 0: none).
        ``gap``/``step_gap`` (local − monotonic at each reading) are needed unless the node
        clock is gapless."""
        np = _np()
        n = len(local)
        if not snaps or all(sn is None for sn in snaps):
            return _no_readings(n)
        if any(sn is None for sn in snaps):  # before the first sample: no reading
            absent = np.array([sn is None for sn in snaps], dtype=bool)
            k = np.where((k >= 0) & absent[np.maximum(k, 0)], -1, k)
            stand_in = next(sn for sn in snaps if sn is not None)
            snaps = [stand_in if sn is None else sn for sn in snaps]
        have = k >= 0
        kk = np.where(have, k, 0)
        ints = np.array([(sn[1], sn[3], sn[4], sn[16]) for sn in snaps], dtype=np.int64)[kk]
        sgap0, anchor, y_ref, stale = ints[:, 0], ints[:, 1], ints[:, 2], ints[:, 3]
        fl = np.array([sn[10:15] for sn in snaps], dtype=np.float64)[kk]
        clock = self.state.clock
        if clock is None or clock.oscillator.gapless:
            gap = step_gap = None
        elif gap is None or step_gap is None:
            raise ValueError("gap arrays are needed for this node clock")
        mono, age, status, stepped = _skewlab_age(local, gap, step_gap, sgap0, self.step_thr_ns,
                                                  anchor, stale)  # fmt: skip
        valid = have & (age <= self.unsync_ns)
        st = np.asarray(status, dtype=np.int8)
        st[~valid] = 0
        tau = np.maximum(age, 0) / NS_PER_S
        lines = np.array([sn[6:10] for sn in snaps], dtype=np.float64)[kk]
        multi = np.array([not sn[5] for sn in snaps], dtype=bool)[kk]
        for j in np.unique(kk[multi]).tolist():  # several envelope pieces: the one in force
            rows = np.flatnonzero(multi & (kk == j))
            lines[rows] = snaps[j][0].lines_at_array(tau[rows])
        jj = fl[:, 3] + stepped * self.step_j
        lo_ns, est_ns, hi_ns = forward_interval(mono + y_ref, tau, *lines.T, fl[:, 0], fl[:, 1],
                                                fl[:, 2], jj, fl[:, 4], np)  # fmt: skip
        return Readings(est_ns, lo_ns, hi_ns, st, valid)

    # -- retrospective refinement ------------------------------------------------------------

    def _slew_ppb(self) -> int | None:
        """How fast the node clock's gap (local − monotonic) can have moved, ppb: the largest
        rate its discipline's correction has had so far (what the host's kernel reports of its
        adjustments), plus 1 ppm of margin; None without a discipline (the gap then moves only
        by steps, which reset the model)."""
        disc = getattr(getattr(self.state.clock, "oscillator", None), "discipline", None)
        if disc is None:
            return None
        rate = getattr(disc, "max_rate_ppb", None)
        return round(disc.max_slew_ppb if rate is None else rate + 1000.0)

    def _select(
        self, view: _ArchiveView, past_local_ns: int, past_mono_ns: int | None, slew: int | None,
        known_until: int | None = None,
    ) -> tuple[_Chosen, int, int, int] | None:  # fmt: skip
        """The samples a past instant is evaluated on: (chosen, monotonic instant, widening for
        an inexact local → monotonic mapping (ns), T4 local of the nearest earlier sample);
        only samples known by local time ``known_until`` (T4 local ≤ it) if given, None when
        no sample was known then."""
        arch = view.entries
        widen = 0
        if past_mono_ns is None:
            j = max(0, bisect_right(view.t4_local_ns, past_local_ns) - 1)
            ej = arch[j]
            past_mono_ns = past_local_ns - ej.gap_ns
            if slew is not None:
                widen = _growth(abs(past_local_ns - ej.t4_local_ns), slew)
        i = bisect_right(view.m_ns, past_mono_ns)
        known = len(arch) if known_until is None else bisect_right(view.t4_local_ns, known_until)
        if known == 0:
            return None
        near = arch[min(i, known) - 1] if i > 0 else arch[0]
        lo_i = max(0, i - self.window // 2)
        hi_i = min(lo_i + self.window, known)
        if lo_i >= hi_i:  # every sample of the window came later: the newest known ones
            lo_i = max(0, hi_i - self.window // 2)
        chosen = self._chosen(view, lo_i, hi_i, near.epoch)
        return chosen, past_mono_ns, widen, near.t4_local_ns

    def _chosen(self, view: _ArchiveView, lo_i: int, hi_i: int, epoch: int) -> _Chosen | None:
        """The samples of archive indices [lo_i, hi_i) of one epoch (memoized); None if the
        window holds none of that epoch."""
        key = (lo_i, hi_i, epoch)
        chosen = view.groups.get(key)
        if chosen is None:
            arch = view.entries
            smp = tuple(e.sample for e in arch[lo_i:hi_i] if e.epoch == epoch)
            if not smp:
                return None
            chosen = _Chosen(smp, max(s.m_ns for s in smp), smp[0].m_ns, smp[-1].m_ns)
            view.groups[key] = chosen
        return chosen

    def reading_at(
        self, past_local_ns: int, past_mono_ns: int | None = None, known_until: int | None = None
    ) -> Reading:
        """The interval for a past local reading, using samples before *and after* it: every
        sample archived now, or only those known by local time ``known_until`` (T4 ≤ it: what
        the node knew then, e.g. receipt + Δ for commit-wait, however late this is evaluated).

        Pass the monotonic reading taken with it (``past_mono_ns``) for an exact mapping;
        otherwise the gap of the nearest earlier sample is used, widened by the discipline's
        maximum slew over the distance (a step in between would not be seen)."""
        view = self._view
        if view is None:
            return _NONE
        sel = self._select(view, past_local_ns, past_mono_ns, self._slew_ppb(), known_until)
        if sel is None or sel[0] is None:
            return _NONE
        chosen, mono, widen, t4 = sel
        if mono - chosen.max_m_ns > self.unsync_ns:
            return _NONE
        r = interval_near(list(chosen.samples), mono, self.w, self.fmax_ppb, self.grid_ns,
                          self.j, self.r)  # fmt: skip
        return self._finish(chosen, mono, widen, t4, r)

    def readings_at(
        self, past_local_ns: Sequence[int], known_until: Sequence[int] | None = None
    ) -> list[Reading]:
        """``reading_at`` for many past local readings (each mapped through the nearest earlier
        sample's gap; ``known_until``: one horizon per reading, as ``reading_at``'s): queries on
        the same samples are evaluated together, vectorized (``estimator.intervals_arrays_near``);
        every result is bit-identical to ``reading_at``'s."""
        view = self._view
        out = [_NONE] * len(past_local_ns)
        if view is None:
            return out
        slew = self._slew_ppb()
        if view.sorted and len(past_local_ns) >= BATCH_MIN:
            import numpy as np

            loc = np.asarray(past_local_ns, dtype=np.int64)
            horizon = None if known_until is None else np.asarray(known_until, dtype=np.int64)
            est, lo, hi, st, t4 = self._columns_vectorized(view, loc, slew, horizon)
            by_status = (None, _FREE, _SYNC)
            for k, e, lo_k, hi_k, s_k, t4_k in zip(
                np.flatnonzero(st).tolist(),
                *(c[st != 0].tolist() for c in (est, lo, hi, st, t4)),
                strict=True,
            ):
                out[k] = _tuple_new(Reading, (e, lo_k, hi_k, by_status[s_k], t4_k))
            return out
        unsync = self.unsync_ns
        pending: dict[int, tuple[_Chosen, list[tuple[int, int, int, int]]]] = {}
        for k, loc in enumerate(past_local_ns):
            sel = self._select(view, loc, None, slew,
                               None if known_until is None else int(known_until[k]))  # fmt: skip
            if sel is None or sel[0] is None:
                continue
            chosen, mono, widen, t4 = sel
            if mono - chosen.max_m_ns > unsync:
                continue
            pending.setdefault(id(chosen), (chosen, []))[1].append((k, mono, widen, t4))
        w, fmax, grid, j, rr = self.w, self.fmax_ppb, self.grid_ns, self.j, self.r
        for chosen, items in pending.values():
            monos = [it[1] for it in items]
            if len(items) >= BATCH_MIN:
                if not chosen.group:
                    chosen.group.append(prepare_group(chosen.samples))
                rs = intervals_near(chosen.group[0], monos, w, fmax, grid, j, rr)
            else:
                smp = list(chosen.samples)
                rs = [interval_near(smp, m, w, fmax, grid, j, rr) for m in monos]
            first, last = chosen.first_m_ns, chosen.last_m_ns
            for (k, mono, widen, t4), r in zip(items, rs, strict=True):
                if r is not None:  # _finish, inlined
                    lo, est, hi = r
                    status = _SYNC if first <= mono <= last else _FREE
                    out[k] = Reading(est, lo - widen, hi + widen, status, t4)
        return out

    def readings_columns(self, past_local_ns, known_until=None):  # type: ignore[no-untyped-def]
        """``readings_at`` as int64 arrays (estimate, earliest, latest, T4) and an int8 status
        array, for an int64 array of past local readings (and of horizons ``known_until``);
        where status is 0 (UNSYNCHRONIZED) the values are meaningless (no reading). Same values
        as ``readings_at``; the commit-wait pass uses this (no Python object per receipt)."""
        import numpy as np

        loc = np.asarray(past_local_ns, dtype=np.int64)
        horizon = None if known_until is None else np.asarray(known_until, dtype=np.int64)
        view = self._view
        if view is not None and view.sorted and len(loc) >= BATCH_MIN:
            return self._columns_vectorized(view, loc, self._slew_ppb(), horizon)
        rs = self.readings_at(loc.tolist(), None if horizon is None else horizon.tolist())
        st = np.array([int(r[3]) for r in rs], dtype=np.int8)
        cols = [np.array([0 if r[3] == 0 else r[i] for r in rs], dtype=np.int64)
                for i in (0, 1, 2, 4)]  # fmt: skip
        return cols[0], cols[1], cols[2], st, cols[3]

    def _columns_vectorized(self, view: _ArchiveView, loc, slew: int | None, horizon=None):  # type: ignore[no-untyped-def]
        """The vectorized ``readings_at`` (archive lists ascending): selection with numpy
        searchsorted (``_select``'s rules), one ``intervals_arrays_near`` call per sample
        group."""
        import numpy as np

        n = len(loc)
        est = np.zeros(n, dtype=np.int64)
        lo = np.zeros(n, dtype=np.int64)
        hi = np.zeros(n, dtype=np.int64)
        st = np.zeros(n, dtype=np.int8)
        t4_out = np.zeros(n, dtype=np.int64)
        t4s, gaps, ms, epochs = view.arrays()
        j = np.maximum(np.searchsorted(t4s, loc, side="right") - 1, 0)
        mono = loc - gaps[j]
        i = np.searchsorted(ms, mono, side="right")
        if horizon is None:
            known = np.full(n, len(ms), dtype=np.int64)
        else:
            known = np.searchsorted(t4s, horizon, side="right")
        near = np.where(i > 0, np.minimum(i, known) - 1, 0)
        lo_i = np.maximum(i - self.window // 2, 0)
        hi_i = np.minimum(lo_i + self.window, known)
        lo_i = np.where(lo_i >= hi_i, np.maximum(hi_i - self.window // 2, 0), lo_i)
        none = known == 0  # no sample known by the horizon: no reading
        near = np.maximum(near, 0)
        epoch = epochs[near]
        if slew is None:
            widen = np.zeros(n, dtype=np.int64)
        else:  # _ceil_rate(|local − T4 of the earlier sample|, slew), exact in Python ints
            q, r = np.divmod(np.abs(loc - t4s[j]), NS_PER_S)  # no int64 overflow: d = q·1e9 + r
            widen = q * slew - ((-r * slew) // NS_PER_S)
        t4_near = t4s[near]
        a = len(ms) + 1  # indices are ≤ the archive's length: one int64 key per group
        keys, inverse = np.unique((epoch * a + lo_i) * a + hi_i, return_inverse=True)
        inverse = inverse.reshape(-1)
        w, fmax, unsync, grid = self.w, self.fmax_ppb, self.unsync_ns, self.grid_ns
        j, rr = self.j, self.r
        for g, key in enumerate(keys.tolist()):
            rest, end_i = divmod(key, a)
            ep_g, first_i = divmod(rest, a)
            chosen = None if end_i <= 0 else self._chosen(view, first_i, end_i, ep_g)
            if chosen is None:
                continue
            idx = np.flatnonzero((inverse == g) & ~none)
            idx = idx[mono[idx] - chosen.max_m_ns <= unsync]
            if len(idx) == 0:
                continue
            m = mono[idx]
            if len(idx) >= BATCH_MIN:
                if not chosen.group:
                    chosen.group.append(prepare_group(chosen.samples))
                lo_g, est_g, hi_g, ok = intervals_arrays_near(chosen.group[0], m, w, fmax, grid,
                                                              j, rr)  # fmt: skip
            else:
                smp = list(chosen.samples)
                rs = [interval_near(smp, x, w, fmax, grid, j, rr) for x in m.tolist()]
                ok = np.array([r is not None for r in rs], dtype=bool)
                lo_g, est_g, hi_g = (np.array([0 if r is None else r[c] for r in rs],
                                              dtype=np.int64) for c in range(3))  # fmt: skip
            idx, m = idx[ok], m[ok]
            est[idx] = est_g[ok]
            lo[idx] = lo_g[ok] - widen[idx]
            hi[idx] = hi_g[ok] + widen[idx]
            inside = (chosen.first_m_ns <= m) & (m <= chosen.last_m_ns)
            st[idx] = np.where(inside, int(_SYNC), int(_FREE))
            t4_out[idx] = t4_near[idx]
        return est, lo, hi, st, t4_out

    @staticmethod
    def _finish(
        chosen: _Chosen, mono: int, widen: int, t4: int, r: tuple[int, int, int] | None
    ) -> Reading:
        if r is None:
            return _NONE
        lo, est, hi = r
        status = _SYNC if chosen.first_m_ns <= mono <= chosen.last_m_ns else _FREE
        return Reading(est, lo - widen, hi + widen, status, t4)


SourceFactory = Callable[..., ClockSource]

SOURCES: dict[str, SourceFactory] = {
    "system": SystemSource,
    "ntp": NtpPointSource,
    "truetime": TrueTimeSource,
    "clockbound": ClockBoundSource,
    "skewlab": SkewlabSource,
    # Backed by real host services (ChronoTick, chrony, ClockBound): read the host clock.
    **EXTERNAL_SOURCES,
}


def source_facts(names: list[str]) -> dict[str, dict[str, bool]]:
    """What the analysis must know about each source, recorded in metadata.json (``sources``)
    by every writer (launchers and the simulator): whether it returns intervals by design. The
    analysis reads it there, never the clock code."""
    return {n: {"bounded": bool(getattr(SOURCES.get(n), "bounded", False))} for n in names}


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
