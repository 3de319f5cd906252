"""Vectorized clock-source readings for the simulator: the same answers as ``read()``, on arrays.

Between two NTP samples a source's state is fixed, so its reading is a closed-form function of
the local reading (and, for ``skewlab``, the monotonic gap). :class:`SourceTrack` lets the real
source objects (``skewlab.clocks.sources``) process every sample exactly as in a node, records
the state each one holds after every sample, then evaluates whole arrays of readings against
those states. The formulas are the sources' own ``read`` bodies, restated on numpy arrays;
``tests/unit/test_sim_vector.py`` checks element by element that they give what ``read`` gives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from skewlab.clocks.base import Status
from skewlab.clocks.sources import (
    ClockBoundSource,
    NtpPointSource,
    SkewlabSource,
    SystemSource,
    TrueTimeSource,
)

NS_PER_S = 1_000_000_000
_SYNC = int(Status.SYNCHRONIZED)
_FREE = int(Status.FREE_RUNNING)
_UNSYNC = int(Status.UNSYNCHRONIZED)
_CLASSES = (SystemSource, NtpPointSource, TrueTimeSource, ClockBoundSource, SkewlabSource)
SIMULATED_SOURCES = {c.name: c for c in _CLASSES}


class NotSimulable(ValueError):
    """A source that reads a host service (chrony, ChronoTick...) has no virtual-time form."""


@dataclass
class Readings:
    """One source's readings of many instants: int64 values valid where ``valid``; int8 status."""

    estimate: np.ndarray
    earliest: np.ndarray
    latest: np.ndarray
    status: np.ndarray
    valid: np.ndarray  # False: UNSYNCHRONIZED, no value (written as null)

    def take(self, idx: np.ndarray) -> Readings:
        return Readings(
            self.estimate[idx], self.earliest[idx], self.latest[idx], self.status[idx],
            self.valid[idx],
        )  # fmt: skip


def _none(n: int) -> Readings:
    z = np.zeros(n, dtype=np.int64)
    return Readings(z, z.copy(), z.copy(), np.zeros(n, dtype=np.int8), np.zeros(n, dtype=bool))


class SourceTrack:
    """Records the state of each source after every NTP sample, then reads arrays.

    ``record(visible_truth_ns)`` is called right after each ``SyncState.add``: from that true
    instant on, readings use the new state.
    """

    def __init__(self, sources: Sequence[Any]) -> None:
        for s in sources:
            if type(s).__name__ not in {c.__name__ for c in SIMULATED_SOURCES.values()}:
                raise NotSimulable(
                    f"source {s.name!r} reads a host service and cannot run in virtual time "
                    f"(simulated sources: {', '.join(SIMULATED_SOURCES)})"
                )
        self.sources = list(sources)
        self.visible: list[int] = []
        self._snaps: list[list[Any]] = [[] for _ in self.sources]

    def record(self, visible_truth_ns: int) -> None:
        self.visible.append(visible_truth_ns)
        for k, s in enumerate(self.sources):
            if isinstance(s, NtpPointSource):
                lat = s.state.latest
                self._snaps[k].append((lat.t4_ns, lat.offset_ns))
            elif isinstance(s, SystemSource):
                self._snaps[k].append(None)
            else:  # truetime, clockbound, skewlab keep what read needs in one tuple
                self._snaps[k].append(s._snap)

    def read(
        self,
        truth: np.ndarray,
        local: np.ndarray,
        gap: np.ndarray | None = None,
        step_gap: np.ndarray | None = None,
    ) -> list[Readings]:
        """Readings of every source at true instants ``truth`` (ascending or not) whose local
        readings are ``local``; ``gap``/``step_gap`` (local − monotonic) are needed when the
        oscillator is not gapless."""
        k = np.searchsorted(np.asarray(self.visible, dtype=np.int64), truth, side="right") - 1
        out = []
        for i, s in enumerate(self.sources):
            if isinstance(s, SystemSource):
                st = np.full(len(local), _FREE, dtype=np.int8)
                out.append(Readings(local, local, local, st, np.ones(len(local), dtype=bool)))
            elif isinstance(s, NtpPointSource):
                out.append(_ntp(s, self._snaps[i], k, local))
            elif isinstance(s, TrueTimeSource):
                out.append(_truetime(s, self._snaps[i], k, local))
            elif isinstance(s, ClockBoundSource):
                out.append(_clockbound(s, self._snaps[i], k, local))
            else:
                out.append(_skewlab(s, self._snaps[i], k, local, gap, step_gap))
        return out


def _cols(snaps: list[Any], k: np.ndarray, width: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Per-reading snapshot fields (index k ≥ 0; rows with k < 0 get field 0 and have=False)."""
    have = k >= 0
    kk = np.where(have, k, 0)
    if not snaps:
        return [np.zeros(len(k), dtype=np.int64) for _ in range(width)], np.zeros(len(k), bool)
    arr = np.asarray(snaps, dtype=np.int64).reshape(len(snaps), width)
    return [arr[kk, j] for j in range(width)], have


def _ceil_growth(age: np.ndarray, rate_ppb: int, cap_ns: int) -> np.ndarray:
    """⌈age·rate/1e9⌉ for age > 0, else 0 (sources._ceil_rate), age clipped at ``cap_ns`` (the
    reading is void beyond it anyway) so the product stays inside int64."""
    a = np.clip(age, 0, max(cap_ns, 0) + 1)
    return -((-a * rate_ppb) // NS_PER_S)


def _ntp(s: NtpPointSource, snaps: list[Any], k: np.ndarray, local: np.ndarray) -> Readings:
    (t4, theta), have = _cols(snaps, k, 2)
    est = local + theta
    st = np.where(local - t4 <= s.stale_after_ns, _SYNC, _FREE).astype(np.int8)
    st[~have] = _UNSYNC
    return Readings(est, est, est, st, have)


def _truetime(s: TrueTimeSource, snaps: list[Any], k: np.ndarray, local: np.ndarray) -> Readings:
    (t4, theta, lam), have = _cols(snaps, k, 3)
    age = local - t4
    valid = have & (age <= s.unsync_ns)
    eps = lam + _ceil_growth(age, s.rate_ppb, s.unsync_ns)
    est = local + theta
    st = np.where(age <= s.stale_ns, _SYNC, _FREE).astype(np.int8)
    st[~valid] = _UNSYNC
    return Readings(est, est - eps, est + eps, st, valid)


def _clockbound(
    s: ClockBoundSource, snaps: list[Any], k: np.ndarray, local: np.ndarray
) -> Readings:
    (t4, base), have = _cols(snaps, k, 2)
    age = local - t4
    valid = have & (age <= s.unsync_ns)
    ceb = base + _ceil_growth(age, s.rate_ppb, s.unsync_ns)
    st = np.where(age <= s.stale_ns, _SYNC, _FREE).astype(np.int8)
    st[~valid] = _UNSYNC
    return Readings(local, local - ceb, local + ceb, st, valid)


def _skewlab(
    s: SkewlabSource,
    snaps: list[Any],
    k: np.ndarray,
    local: np.ndarray,
    gap: np.ndarray | None,
    step_gap: np.ndarray | None,
) -> Readings:
    n = len(local)
    if not snaps:
        return _none(n)
    have = k >= 0
    kk = np.where(have, k, 0)
    # snapshot: (model, sgap0, t4, anchor, y_ref, single, a_hi, f_hi, a_lo, f_lo, fa, ff, w)
    ints = np.array([(sn[1], sn[3], sn[4]) for sn in snaps], dtype=np.int64)[kk]
    sgap0, anchor, y_ref = ints[:, 0], ints[:, 1], ints[:, 2]
    fl = np.array([(sn[10], sn[11], sn[12]) for sn in snaps], dtype=np.float64)[kk]
    fa, ff, w = fl[:, 0], fl[:, 1], fl[:, 2]
    clock = s.state.clock
    if clock is None or clock.oscillator.gapless:
        mono = local
        stepped = sgap0 != 0
    else:
        assert gap is not None and step_gap is not None, "gap arrays needed for this oscillator"
        mono = local - gap
        d = step_gap - sgap0
        stepped = ~((-s.step_thr_ns <= d) & (d <= s.step_thr_ns))
    age = mono - anchor
    valid = have & (age <= s.unsync_ns)
    st = np.where(stepped | (age > s.stale_ns), _FREE, _SYNC).astype(np.int8)
    st[~valid] = _UNSYNC
    # Model.bounds_at (and read's inlined one-piece form, the same formula): τ ≥ 0 in s
    tau = np.maximum(age, 0) / NS_PER_S
    a_hi, f_hi, a_lo, f_lo = _envelope_lines(snaps, kk, tau)
    ww = w * tau**1.5
    hi = a_hi + f_hi * tau + ww
    lo = a_lo + f_lo * tau - ww
    est = fa + ff * tau
    est = np.where(est < lo, lo, np.where(est > hi, hi, est))
    base = mono + y_ref
    return Readings(
        base + est.astype(np.int64),
        base + lo.astype(np.int64) - 2,
        base + hi.astype(np.int64) + 2,
        st,
        valid,
    )


def _envelope_lines(
    snaps: list[Any], kk: np.ndarray, tau: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The (a, f) of the upper and lower envelope piece in force at τ for each reading."""
    lines = np.array([(sn[6], sn[7], sn[8], sn[9]) for sn in snaps], dtype=np.float64)[kk]
    a_hi, f_hi, a_lo, f_lo = (lines[:, j].copy() for j in range(4))
    is_multi = np.array([not sn[5] for sn in snaps], dtype=bool)
    rows_all = np.flatnonzero(is_multi[kk])
    if rows_all.size:
        order = rows_all[np.argsort(kk[rows_all], kind="stable")]
        ks = kk[order]
        starts = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
        ends = np.r_[starts[1:], len(ks)]
        for a, b in zip(starts, ends, strict=True):
            m: Any = snaps[ks[a]][0]
            rows = order[a:b]
            t = tau[rows]
            j = np.searchsorted(np.asarray(m.hi_taus), t, side="right") - 1
            hl = np.asarray(m.hi_lines, dtype=np.float64)[j]
            a_hi[rows], f_hi[rows] = hl[:, 0], hl[:, 1]
            j = np.searchsorted(np.asarray(m.lo_taus), t, side="right") - 1
            ll = np.asarray(m.lo_lines, dtype=np.float64)[j]
            a_lo[rows], f_lo[rows] = ll[:, 0], ll[:, 1]
    return a_hi, f_hi, a_lo, f_lo
