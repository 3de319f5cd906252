"""Event-time processing as a stream processor does it: watermarks, windows and late events.

Each formula has one home here and one paragraph in docs/METHODOLOGY.md ("Event time"). The
definitions are Apache Flink's (DataStream API), so a Flink job fed the same timestamps in the
same order makes the same decisions (tests/integration/test_flink_oracle.py runs one):

- event time is a clock reading floored to Flink's millisecond (``tick_ns``);
- ``BoundedOutOfOrdernessWatermarks(D)``: watermark = max timestamp seen − D − 1 ms, here
  emitted after every event (the limit of Flink's periodic emission; a periodic generator emits
  later, so it can only see fewer late events);
- ``TimeWindow.getWindowStartWithOffset``: start = t − ((t − offset + slide) mod slide), window
  [start, start + size), max timestamp = end − 1 ms; a sliding window assigner gives every
  start from the last one down to t − size (exclusive), one slide apart;
- ``WindowOperator``: a window is late once max timestamp + allowed lateness ≤ watermark (the
  element is not added to it); an element none of whose windows takes it is Flink's late side
  output; ``EventTimeTrigger`` fires a window when the watermark reaches its max timestamp and
  again at once for every element added after that (within the allowed lateness).

Pure numpy on int64 nanoseconds; arrays are in arrival (processing) order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NS_PER_MS = 1_000_000
TICK_NS = NS_PER_MS  # Flink's event-time resolution: timestamps and watermarks are ms
NO_WATERMARK = np.iinfo(np.int64).min // 4  # before the first event (Flink: Long.MIN_VALUE)
DEFAULT_DELAYS_MS = (0, 1, 5, 20, 100)
DEFAULT_LATENESS_MS = 5


@dataclass(frozen=True)
class WindowSpec:
    """A window assigner: tumbling when slide = size (integer ns, multiples of the tick)."""

    size_ns: int
    slide_ns: int
    offset_ns: int = 0

    @property
    def name(self) -> str:
        """The key in stats.json: ``tumbling_50`` or ``sliding_100_50`` (ms)."""
        s, p = self.size_ns // NS_PER_MS, self.slide_ns // NS_PER_MS
        return f"tumbling_{s}" if s == p else f"sliding_{s}_{p}"

    @property
    def per_element(self) -> int:
        """Most windows one element belongs to (Flink's loop over starts > t − size)."""
        return -(-self.size_ns // self.slide_ns)


@dataclass(frozen=True)
class EventTimeSettings:
    """Watermark delays, allowed lateness and window assigners of the event-time analysis."""

    delays_ns: tuple[int, ...] = tuple(d * NS_PER_MS for d in DEFAULT_DELAYS_MS)
    lateness_ns: int = DEFAULT_LATENESS_MS * NS_PER_MS
    windows: tuple[WindowSpec, ...] = ()
    tick_ns: int = TICK_NS

    @classmethod
    def default(cls, sizes_ns: tuple[int, ...], offset_ns: int = 0) -> EventTimeSettings:
        """Tumbling windows at the analysis's window sizes, plus one sliding window twice the
        smallest size sliding by the smallest (100 ms by 50 ms by default)."""
        wins = [WindowSpec(s, s, offset_ns) for s in sizes_ns]
        if sizes_ns:
            wins.append(WindowSpec(2 * min(sizes_ns), min(sizes_ns), offset_ns))
        return cls(windows=tuple(wins))


def event_timestamps(t_ns: np.ndarray, tick_ns: int = TICK_NS) -> np.ndarray:
    """A reading as an event timestamp: floored to the tick (Flink: epoch milliseconds)."""
    t = np.asarray(t_ns, dtype=np.int64)
    return t - np.mod(t, tick_ns)


def window_start(ts: np.ndarray, slide_ns: int, offset_ns: int = 0) -> np.ndarray:
    """Flink's start of the last window holding t: t − ((t − offset + slide) mod slide)."""
    ts = np.asarray(ts, dtype=np.int64)
    return ts - np.mod(ts - offset_ns + slide_ns, slide_ns)


def running_max(ts: np.ndarray) -> np.ndarray:
    """M_i = the largest timestamp among the first i + 1 arrivals."""
    return np.maximum.accumulate(np.asarray(ts, dtype=np.int64)) if len(ts) else ts


def watermark_before(ts: np.ndarray, delay_ns: int, tick_ns: int = TICK_NS) -> np.ndarray:
    """The watermark each arrival meets: M_{i−1} − D − tick (NO_WATERMARK for the first)."""
    m = running_max(ts)
    w = np.empty(len(ts), dtype=np.int64)
    if len(ts):
        w[0] = NO_WATERMARK
        w[1:] = m[:-1] - delay_ns - tick_ns
    return w


def max_out_of_orderness(ts: np.ndarray) -> int:
    """max_i (M_{i−1} − t_i), at least 0: the smallest delay D with which no arrival is ever
    behind the watermark (t_i > M_{i−1} − D − tick), so none is late in any window."""
    if len(ts) < 2:
        return 0
    m = running_max(ts)
    return max(0, int((m[:-1] - ts[1:]).max()))


def _pairs(ts: np.ndarray, win: WindowSpec) -> tuple[np.ndarray, np.ndarray]:
    """Every (element index, window start) assignment, element-major."""
    last = window_start(ts, win.slide_ns, win.offset_ns)
    k = np.arange(win.per_element, dtype=np.int64)
    starts = last[:, None] - k[None, :] * win.slide_ns
    valid = starts > (ts - win.size_ns)[:, None]
    elem = np.broadcast_to(np.arange(len(ts), dtype=np.int64)[:, None], starts.shape)
    return elem[valid], starts[valid]


def lossless_delay(
    ts: np.ndarray, win: WindowSpec, lateness_ns: int, tick_ns: int = TICK_NS
) -> int:
    """The smallest delay D (a multiple of the tick) that drops no assignment of any element:
    a pair (i, start) is dropped when end − tick + L ≤ M_{i−1} − D − tick, i.e. when
    D ≤ M_{i−1} − end − L; so D = max(0, max over pairs of M_{i−1} − end − L + tick)."""
    if len(ts) < 2:
        return 0
    elem, start = _pairs(ts, win)
    keep = elem > 0
    m = running_max(ts)
    need = m[elem[keep] - 1] - (start[keep] + win.size_ns) - lateness_ns + tick_ns
    return max(0, int(need.max())) if need.size else 0


@dataclass
class Outcome:
    """What the window operator did with one stream at one delay, lateness and assigner."""

    late: np.ndarray  # bool per element: some window of it had fired when it arrived
    dropped: np.ndarray  # bool per element: every window past its lateness (side output)
    partially_dropped: np.ndarray  # bool per element: some windows, not all, past lateness
    pair_elem: np.ndarray  # accepted (element, window start) assignments: the final contents
    pair_start: np.ndarray
    window_start: np.ndarray  # per window that received an element, sorted
    window_count: np.ndarray  # its final number of elements
    window_firings: np.ndarray  # how often it fired (on time once, then once per late element)
    window_fire_index: np.ndarray  # arrival index after which it first fired; -1 = end of input


def process(
    ts: np.ndarray, delay_ns: int, lateness_ns: int, win: WindowSpec, tick_ns: int = TICK_NS
) -> Outcome:
    """Run one stream (timestamps in arrival order) through the watermark generator and the
    window operator, as Flink's WindowOperator with EventTimeTrigger does."""
    ts = np.asarray(ts, dtype=np.int64)
    n = len(ts)
    wm = watermark_before(ts, delay_ns, tick_ns)
    elem, start = _pairs(ts, win)
    max_ts = start + win.size_ns - tick_ns
    w = wm[elem]
    drop = max_ts + lateness_ns <= w  # isWindowLate: cleanup time ≤ watermark
    fired = (max_ts <= w) & ~drop  # EventTimeTrigger.onElement: fire again at once
    per = np.bincount(elem, minlength=n)
    n_drop = np.bincount(elem, weights=drop, minlength=n).astype(np.int64)
    n_late = np.bincount(elem, weights=drop | fired, minlength=n).astype(np.int64)
    dropped = (n_drop == per) & (per > 0)
    keep = ~drop
    ke, ks, kf = elem[keep], start[keep], fired[keep]
    starts, inv = np.unique(ks, return_inverse=True)
    count = np.bincount(inv, minlength=len(starts)).astype(np.int64)
    late_acc = np.bincount(inv, weights=kf, minlength=len(starts)).astype(np.int64)
    on_time = count - late_acc
    firings = (on_time > 0).astype(np.int64) + late_acc
    # First firing: on-time windows when the watermark M_j − D − tick reaches max timestamp
    # (first j with M_j ≥ max_ts + D + tick; none: the end of input's final watermark); a
    # window whose first element came late fires with that element.
    m = running_max(ts)
    wmax = starts + win.size_ns - tick_ns
    j = np.searchsorted(m, wmax + delay_ns + tick_ns, side="left") if n else np.zeros(0)
    fire = np.where(j < n, j, -1).astype(np.int64)
    first_late = np.full(len(starts), n, dtype=np.int64)
    np.minimum.at(first_late, inv[kf], ke[kf])
    fire = np.where(on_time > 0, fire, first_late)
    return Outcome(
        late=n_late > 0,
        dropped=dropped,
        partially_dropped=(n_drop > 0) & ~dropped,
        pair_elem=ke,
        pair_start=ks,
        window_start=starts,
        window_count=count,
        window_firings=firings,
        window_fire_index=fire,
    )


def content_difference(a: Outcome, b: Outcome) -> tuple[int, int, int]:
    """Compare two outcomes over the same elements (a source's and true time's): returns
    (windows whose final contents differ, windows in either, elements assigned differently).
    A window is identified by its start; an element's assignment is its set of starts."""
    ea = np.concatenate([a.pair_elem, b.pair_elem])
    sa = np.concatenate([a.pair_start, b.pair_start])
    side = np.concatenate([np.zeros(len(a.pair_elem), np.int8), np.ones(len(b.pair_elem), np.int8)])
    if not len(ea):
        return 0, 0, 0
    order = np.lexsort((side, sa, ea))
    ea, sa, side = ea[order], sa[order], side[order]
    same = np.zeros(len(ea), dtype=bool)  # a pair present on both sides (adjacent after sort)
    both = (ea[1:] == ea[:-1]) & (sa[1:] == sa[:-1])
    same[1:] |= both
    same[:-1] |= both
    diff_starts = np.unique(sa[~same])
    total = len(np.unique(sa))
    elems = len(np.unique(ea[~same]))
    return len(diff_starts), total, elems
