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

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from skewlab.analysis.stats_util import PERCENTILES, Counts, nearest_rank_index, rate

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
    # Receipts beyond which the event-time analysis is skipped (reported, with the reason):
    # a pass per (source variant, stream, window), more than the rest of the analysis costs.
    max_receipts: int = 2_000_000

    @property
    def headline(self) -> WindowSpec:
        """The window the summary reports: the first (the smallest tumbling by default)."""
        return self.windows[0]

    @classmethod
    def default(
        cls,
        sizes_ns: tuple[int, ...],
        offset_ns: int = 0,
        delays_ns: tuple[int, ...] | None = None,
        lateness_ns: int | None = None,
    ) -> EventTimeSettings:
        """Tumbling windows at the analysis's window sizes, plus one sliding window twice the
        smallest size sliding by the smallest (100 ms by 50 ms by default); the spec's
        ``analysis.watermark_delays_ms`` and ``allowed_lateness_ms`` when given."""
        wins = [WindowSpec(s, s, offset_ns) for s in sizes_ns]
        if sizes_ns:
            wins.append(WindowSpec(2 * min(sizes_ns), min(sizes_ns), offset_ns))
        base = cls()
        return cls(
            delays_ns=base.delays_ns if delays_ns is None else tuple(delays_ns),
            lateness_ns=base.lateness_ns if lateness_ns is None else lateness_ns,
            windows=tuple(wins),
        )


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
        w[1:] = watermark(m[:-1], delay_ns, tick_ns)
    return w


def watermark(max_seen: np.ndarray, delay_ns: int, tick_ns: int = TICK_NS) -> np.ndarray:
    """BoundedOutOfOrdernessWatermarks: max timestamp seen − D − tick."""
    return max_seen - delay_ns - tick_ns


def max_out_of_orderness(ts: np.ndarray) -> int:
    """max_i (M_{i−1} − t_i), at least 0: the smallest delay D with which no arrival is ever
    behind the watermark (t_i > M_{i−1} − D − tick), so none is late in any window."""
    if len(ts) < 2:
        return 0
    m = running_max(ts)
    return max(0, int((m[:-1] - ts[1:]).max()))


@dataclass
class Assigned:
    """One stream's elements under one window assigner, independent of the watermark: the
    (element, k-th window) grid of starts, k = 0 for the last window holding the element; and
    what every delay's ``process`` would otherwise recompute."""

    ts: np.ndarray  # event timestamps, arrival order
    win: WindowSpec
    starts: np.ndarray  # (n, per_element) window starts
    valid: np.ndarray  # (n, per_element) the start is one of the element's windows
    window_start: np.ndarray  # sorted distinct starts over valid slots
    index: np.ndarray  # (n, per_element) position of each slot's start in window_start
    running_max: np.ndarray  # M_i, the largest timestamp among the first i + 1 arrivals
    per: np.ndarray  # windows per element (valid slots in its row)
    count: np.ndarray  # elements per window in window_start, none dropped
    behind: np.ndarray  # M_{i−1} − t_i, how far each element is behind the ones before it
    # the elements at least _floor behind, ascending: process's candidates at its first delay;
    # later calls with larger thresholds only filter them
    _cand: np.ndarray | None = None
    _floor: int | None = None

    def behind_at_least(self, x: int) -> np.ndarray:
        """Elements i ≥ 1 with M_{i−1} − t_i ≥ x, ascending."""
        if self._cand is None or self._floor is None or x < self._floor:
            self._cand = np.flatnonzero(self.behind >= x) + 1
            self._floor = x
            return self._cand
        c = self._cand
        return c if x == self._floor else c[self.behind[c - 1] >= x]


def _row_any(x: np.ndarray) -> np.ndarray:
    """Per row of a (n, k) boolean array with few columns: any true (column by column: numpy's
    row reductions over short rows are ~10x slower)."""
    out = x[:, 0].copy()
    for k in range(1, x.shape[1]):
        out |= x[:, k]
    return out


def _row_count(x: np.ndarray) -> np.ndarray:
    """Per row of a (n, k) boolean array with few columns: how many are true."""
    out = x[:, 0].astype(np.int64)
    for k in range(1, x.shape[1]):
        out += x[:, k]
    return out


def assign(ts: np.ndarray, win: WindowSpec) -> Assigned:
    """Flink's assigner: starts from the last window down to t − size (exclusive)."""
    ts = np.asarray(ts, dtype=np.int64)
    p = win.per_element
    # the last window's number on the grid offset + k·slide: start = window_start(ts, ...)
    kl = (ts - win.offset_ns) // win.slide_ns
    num = kl[:, None] - np.arange(p, dtype=np.int64)[None, :]  # each slot's window number
    starts = win.offset_ns + num * win.slide_ns
    valid = starts > (ts - win.size_ns)[:, None]
    every = p == 1 or bool(valid.all())  # tumbling: the one slot always holds
    n = len(ts)
    if n:
        lo = int(num[:, -1].min()) if every else int(num[valid].min())
        span = int(kl.max()) - lo + 1
    else:
        lo = span = 0
    flat = num.ravel() if every else num[valid]
    if span <= 4 * flat.size + 1024:  # number the windows that occur by their grid position
        k = flat - lo
        count = np.bincount(k, minlength=span).astype(np.int64)
        occurs = np.flatnonzero(count)
        rank = np.cumsum(count > 0) - 1
        uniq, inv, count = win.offset_ns + (lo + occurs) * win.slide_ns, rank[k], count[occurs]
    else:  # windows spread far apart (a clock days off): sort them
        u, inv = np.unique(flat, return_inverse=True)
        uniq = win.offset_ns + u * win.slide_ns
        count = np.bincount(inv, minlength=len(u)).astype(np.int64)
    if every:
        index = inv.reshape(starts.shape)
        per = np.full(n, p, dtype=np.int64)
    else:
        index = np.full(starts.shape, -1, dtype=np.int64)
        index[valid] = inv
        per = _row_count(valid)
    m = running_max(ts)
    behind = m[:-1] - ts[1:]
    return Assigned(ts, win, starts, valid, uniq, index, m, per, count, behind)


def _pairs(ts: np.ndarray, win: WindowSpec) -> tuple[np.ndarray, np.ndarray]:
    """Every (element index, window start) assignment, element-major."""
    a = assign(ts, win)
    elem = np.broadcast_to(np.arange(len(ts), dtype=np.int64)[:, None], a.starts.shape)
    return elem[a.valid], a.starts[a.valid]


def lossless_delay(
    ts: np.ndarray,
    win: WindowSpec,
    lateness_ns: int,
    tick_ns: int = TICK_NS,
    assigned: Assigned | None = None,
) -> int:
    """The smallest delay D (a multiple of the tick) that drops no assignment of any element:
    a pair (i, start) is dropped when end − tick + L ≤ M_{i−1} − D − tick, i.e. when
    D ≤ M_{i−1} − end − L; so D = max(0, max over pairs of M_{i−1} − end − L + tick)."""
    if len(ts) < 2:
        return 0
    a = assigned if assigned is not None else assign(ts, win)
    m = a.running_max
    prev = np.concatenate([[NO_WATERMARK], m[:-1]])[:, None]
    need = prev - (a.starts + win.size_ns)
    if not a.valid.all():  # the slots that are no window of their element never count
        need = np.where(a.valid, need, need.min())
    return max(0, int(need.max()) - lateness_ns + tick_ns)


@dataclass
class Outcome:
    """What the window operator did with one stream at one delay, lateness and assigner."""

    assigned: Assigned
    drop: np.ndarray  # (n, per_element) slot past its window's lateness: not added
    late: np.ndarray  # bool per element: some window of it had fired when it arrived
    dropped: np.ndarray  # bool per element: every window past its lateness (side output)
    partially_dropped: np.ndarray  # bool per element: some windows, not all, past lateness
    window_start: np.ndarray  # per window that received an element, sorted
    window_count: np.ndarray  # its final number of elements
    window_firings: np.ndarray  # how often it fired (on time once, then once per late element)
    window_fire_index: np.ndarray  # arrival index after which it first fired; -1 = end of input

    @property
    def pair_elem(self) -> np.ndarray:
        """Element of every accepted (element, window start) pair: the final contents."""
        a = self.assigned
        elem = np.broadcast_to(np.arange(len(a.ts), dtype=np.int64)[:, None], a.starts.shape)
        return elem[a.valid & ~self.drop]

    @property
    def pair_start(self) -> np.ndarray:
        return self.assigned.starts[self.assigned.valid & ~self.drop]


def process(
    ts: np.ndarray,
    delay_ns: int,
    lateness_ns: int,
    win: WindowSpec,
    tick_ns: int = TICK_NS,
    assigned: Assigned | None = None,
) -> Outcome:
    """Run one stream (timestamps in arrival order) through the watermark generator and the
    window operator, as Flink's WindowOperator with EventTimeTrigger does. ``assigned``: the
    stream's ``assign(ts, win)``, when several delays share it."""
    a = assigned if assigned is not None else assign(ts, win)
    ts = a.ts
    n = len(ts)
    m = a.running_max
    # A slot is late (its window fired: max timestamp = end − tick ≤ watermark M_{i−1} − D −
    # tick) or dropped (isWindowLate: max timestamp + L ≤ watermark). Every valid slot's max
    # timestamp is ≥ t + 1 − tick, so only elements with t + 1 − tick + min(L, 0) ≤ watermark,
    # i.e. M_{i−1} − t ≥ D + 1 + min(L, 0), can have one: the (usually few) out-of-order ones.
    cand = a.behind_at_least(delay_ns + 1 + min(lateness_ns, 0))
    w = watermark(m[cand - 1], delay_ns, tick_ns)[:, None]  # the watermark each candidate meets
    v, end = a.valid[cand], a.starts[cand] + win.size_ns
    dsub = v & (end - tick_ns + lateness_ns <= w)
    fsub = v & (end - tick_ns <= w) & ~dsub  # EventTimeTrigger.onElement: fire again at once
    drop = np.zeros(a.starts.shape, dtype=bool)
    late = np.zeros(n, dtype=bool)
    dropped = np.zeros(n, dtype=bool)
    partially = np.zeros(n, dtype=bool)
    nw = len(a.window_start)
    if cand.size:
        drop[cand] = dsub
        late[cand] = _row_any(dsub | fsub)
    if dsub.any():
        n_drop, per = _row_count(dsub), a.per[cand]
        dropped[cand] = (n_drop == per) & (per > 0)
        partially[cand] = (n_drop > 0) & (n_drop < per)
        count = a.count - np.bincount(a.index[cand][dsub], minlength=nw).astype(np.int64)
    else:  # nothing past its lateness: every slot is kept
        count = a.count
    late_idx = a.index[cand][fsub]
    late_acc = np.bincount(late_idx, minlength=nw).astype(np.int64)
    on_time = count - late_acc
    firings = (on_time > 0).astype(np.int64) + late_acc
    # First firing: on-time windows when the watermark M_j − D − tick reaches max timestamp
    # (first j with M_j ≥ max_ts + D + tick; none: the end of input's final watermark); a
    # window whose first element came late fires with that element.
    wmax = a.window_start + win.size_ns - tick_ns
    j = np.searchsorted(m, wmax + delay_ns + tick_ns, side="left")
    fire = np.where(j < n, j, -1).astype(np.int64)
    first_late = np.full(nw, n, dtype=np.int64)
    if late_idx.size:
        # fired slots in row-major order: elements ascending, so a window's first occurrence
        # (a stable sort's first index) is its first late element
        elem = cand[np.nonzero(fsub)[0]]
        u, first = np.unique(late_idx, return_index=True)
        first_late[u] = elem[first]
    fire = np.where(on_time > 0, fire, first_late)
    has = count > 0
    return Outcome(
        assigned=a,
        drop=drop,
        late=late,
        dropped=dropped,
        partially_dropped=partially,
        window_start=a.window_start[has],
        window_count=count[has],
        window_firings=firings[has],
        window_fire_index=fire[has],
    )


def _kept_elsewhere(o: Outcome, other: Outcome) -> np.ndarray:
    """For each slot of ``o``: is the same (element, start) pair accepted in ``other``? Both
    under one assigner, so every start lies on the same grid and the slot's position in the
    other row is a whole number of slides from that row's last start."""
    a, b = o.assigned, other.assigned
    keep_b = b.valid & ~other.drop if other.drop.any() else b.valid
    p = b.starts.shape[1]
    if p == 1:  # tumbling: one window per element
        return (a.starts == b.starts) & keep_b
    j = (b.starts[:, :1] - a.starts) // b.win.slide_ns
    out = np.zeros(a.starts.shape, dtype=bool)
    for k in range(p):  # slot k of the other row (one pass per column: rows are short)
        out |= (j == k) & keep_b[:, k : k + 1]
    return out


def content_difference(a: Outcome, b: Outcome) -> tuple[int, int, int]:
    """Compare two outcomes of the same elements under one assigner (a source's and true
    time's): returns (windows whose final contents differ, windows in either, elements whose
    accepted windows differ). A window is identified by its start."""
    if a.assigned.win != b.assigned.win:
        raise ValueError("content_difference: the outcomes must share one window assigner")
    ka = a.assigned.valid & ~a.drop
    kb = b.assigned.valid & ~b.drop
    only_a = ka & ~_kept_elsewhere(a, b)
    only_b = kb & ~_kept_elsewhere(b, a)
    differ = np.unique(np.concatenate([a.assigned.starts[only_a], b.assigned.starts[only_b]]))
    both = len(np.intersect1d(a.window_start, b.window_start, assume_unique=True))
    total = len(a.window_start) + len(b.window_start) - both
    elems = int(np.count_nonzero(_row_any(only_a) | _row_any(only_b)))
    return len(differ), total, elems


# -- the analysis's summary of one stream ----------------------------------------------------


@dataclass
class Stream:
    """One stream as the window operator sees it, in arrival order: a worker's receipts, or
    every worker's merged by true arrival time."""

    name: str
    proc_ns: np.ndarray  # true arrival (processing) time, ns
    truth_ts: np.ndarray  # the event timestamp true time would give (floored to the tick)
    block: np.ndarray  # each element's time block (rate intervals)
    blocks: int  # number of time blocks
    stamps: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    # variant ("estimate" / "latest") → (reading ns, present)


def _dist(x: np.ndarray) -> dict[str, Any]:
    """n, mean, min, nearest-rank percentiles and max of integer ns values."""
    n = len(x)
    if not n:
        return {"n": 0, "mean_ns": None, "min_ns": None, "p50_ns": None, "p99_ns": None,
                "max_ns": None}  # fmt: skip
    srt = np.sort(x)
    out: dict[str, Any] = {"n": n, "mean_ns": float(x.mean()), "min_ns": int(srt[0])}
    for name, (num, den) in PERCENTILES.items():
        out[f"{name}_ns"] = int(srt[nearest_rank_index(n, num, den)])
    out["max_ns"] = int(srt[-1])
    return out


def _counts(mask: np.ndarray, block: np.ndarray, blocks: int) -> Counts:
    return Counts(np.bincount(block[mask], minlength=blocks))


def delay_result(
    o: Outcome,
    truth: Outcome,
    proc_ns: np.ndarray,
    block: np.ndarray,
    blocks: int,
    diff: tuple[int, int, int] | None = None,
    every: Counts | None = None,
) -> dict[str, Any]:
    """One (stream, delay, window) as stats.json reports it (docs/METHODOLOGY.md). ``diff``:
    ``content_difference(o, truth)`` when already known (it depends only on what was dropped);
    ``every``: the elements' count per block, when already known."""
    n = len(o.late)
    if every is None:
        every = _counts(np.ones(n, dtype=bool), block, blocks)
    differ, total, misassigned = diff if diff is not None else content_difference(o, truth)
    at = o.window_fire_index
    fired = at >= 0
    ends = o.window_start[fired] + o.assigned.win.size_ns
    return {
        "late": rate(_counts(o.late, block, blocks), every),
        "dropped": rate(_counts(o.dropped, block, blocks), every),
        "within_lateness": int((o.late & ~o.dropped).sum()),
        "partially_dropped": int(o.partially_dropped.sum()),
        "windows": len(o.window_start),
        "firings": int(o.window_firings.sum()),
        "fired_at_end": int((~fired).sum()),
        "firing_delay": _dist(proc_ns[at[fired]] - ends),
        "windows_compared": total,
        "windows_differ": differ,
        "windows_differ_share": differ / total if total else None,
        "misassigned": misassigned,
    }


def stream_result(
    st: Stream, ts_raw: np.ndarray, present: np.ndarray, settings: EventTimeSettings,
    windows: tuple[WindowSpec, ...], truth_cache: dict[Any, Any] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Every delay × window of one stream stamped by one source variant. ``truth_cache``: the
    true timestamps' assignments and outcomes, shared by the variants that stamped every
    element of this stream (theirs are then the same elements)."""
    ts = event_timestamps(ts_raw[present], settings.tick_ns)
    tt = st.truth_ts[present]
    cache = truth_cache if truth_cache is not None and bool(present.all()) else {}

    def truth_process(d: int, win: WindowSpec, at: Assigned) -> Outcome:
        key = ("process", d, win)
        if key not in cache:
            cache[key] = process(tt, d, settings.lateness_ns, win, settings.tick_ns, at)
        out: Outcome = cache[key]
        return out

    proc, block = st.proc_ns[present], st.block[present]
    out: dict[str, Any] = {
        "elements": int(present.sum()),
        "unstamped": int((~present).sum()),
        "max_out_of_orderness_ns": max_out_of_orderness(ts),
        "lossless_delay_ns": {},
        "delays": {},
    }
    every = Counts(np.bincount(block, minlength=st.blocks))
    for win in windows:
        if ("assign", win) not in cache:
            cache[("assign", win)] = assign(tt, win)
        a, at = assign(ts, win), cache[("assign", win)]
        out["lossless_delay_ns"][win.name] = lossless_delay(
            ts, win, settings.lateness_ns, settings.tick_ns, a
        )
        truth0 = truth_process(0, win, at)
        lossless_diff = None  # the contents compare alike at every delay that drops nothing
        for d in settings.delays_ns:
            o = process(ts, d, settings.lateness_ns, win, settings.tick_ns, a)
            truth = truth0 if not truth0.drop.any() else truth_process(d, win, at)
            diff = None
            if not o.drop.any() and truth is truth0:
                if lossless_diff is None:
                    lossless_diff = content_difference(o, truth)
                diff = lossless_diff
            key = str(d // NS_PER_MS)
            out["delays"].setdefault(key, {"windows": {}})["windows"][win.name] = delay_result(
                o, truth, proc, block, st.blocks, diff, every
            )
    return out


def settings_doc(st: EventTimeSettings) -> dict[str, Any]:
    """The settings as stats.json records them (ms)."""
    return {
        "delays_ms": [d // NS_PER_MS for d in st.delays_ns],
        "allowed_lateness_ms": st.lateness_ns // NS_PER_MS,
        "tick_ms": st.tick_ns / NS_PER_MS,
        "windows": {
            w.name: {
                "size_ms": w.size_ns // NS_PER_MS,
                "slide_ms": w.slide_ns // NS_PER_MS,
                "offset_ms": w.offset_ns / NS_PER_MS,
            }
            for w in st.windows
        },
        "headline_window": st.headline.name,
        "watermark": "max timestamp seen - delay - 1 ms, emitted after every event",
        "arrival": "true receipt time (each worker; 'all': every worker's receipts merged)",
        "max_receipts": st.max_receipts,
    }


MERGED = "all"  # the stream of every worker's receipts merged in true arrival order


def analyze(
    streams: list[Stream], sources: list[str], bounded: dict[str, bool], st: EventTimeSettings
) -> dict[str, Any]:
    """Every source variant over every stream: the merged stream at every window, each worker's
    at the headline window; ``summary`` = the merged stream at the headline window."""
    out: dict[str, Any] = {"available": True, "reason": None, "settings": settings_doc(st)}
    per: dict[str, Any] = {}
    summary: dict[str, Any] = {}
    head = st.headline.name
    truth_caches: dict[str, dict[Any, Any]] = {}  # per stream: see stream_result
    for s in sources:
        per[s] = {}
        summary[s] = {}
        for variant in ("estimate", "latest") if bounded.get(s) else ("estimate",):
            per[s][variant] = {"streams": {}}
            for stream in streams:
                vals, present = stream.stamps[f"{s}/{variant}"]
                wins = st.windows if stream.name == MERGED else (st.headline,)
                per[s][variant]["streams"][stream.name] = stream_result(
                    stream, vals, present, st, wins, truth_caches.setdefault(stream.name, {})
                )
            done = per[s][variant]["streams"]
            top = done.get(MERGED) or next(iter(done.values()))
            summary[s][variant] = {
                "delays": {
                    d: {
                        "late": r["windows"][head]["late"],
                        "dropped": r["windows"][head]["dropped"],
                        "windows_differ_share": r["windows"][head]["windows_differ_share"],
                    }
                    for d, r in top["delays"].items()
                },
                "lossless_delay_ns": top["lossless_delay_ns"][head],
                "max_out_of_orderness_ns": top["max_out_of_orderness_ns"],
            }
    out["sources"] = per
    out["summary"] = summary
    return out
