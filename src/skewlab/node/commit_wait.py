"""Commit-wait re-evaluation: each receipt's bounded readings again at T+Δ, in a background thread
of the worker.
"""

from __future__ import annotations

import threading
from array import array
from collections.abc import Callable, Sequence
from typing import Any

from skewlab.clocks.base import Reading
from skewlab.timebase import HOST_CLOCK, Scheduler, monotonic_s, thread_cpu_s
from skewlab.trace import CW_NO_REFINEMENT, PartWriter, commit_wait_prefix, commit_wait_schema

CW_STOP_BUDGET_S = 10.0  # at stop, commit-wait re-evaluation of a backlog gets this long
CW_BATCH = 65_536  # commit-wait receipts evaluated together at most (one call per source)
# the evaluation thread wakes at most 5 times a second: a pass costs about the same whatever
# it evaluates (the skewlab source's polygons, one per ms of receipts, clipped by every sample
# on arrays), and its values do not depend on when it runs (known_until)
CW_MIN_POLL_S = 0.2
CW_MAX_BACKLOG = 4_000_000  # receipts awaiting their longest T+Δ (16 B each); more: shed, counted


class CommitWaitEvaluator:
    """Re-evaluates each receipt's bounded readings at T+Δ, in a background thread.

    The receive loop only appends the receipt's event id and local time to two flat integer
    arrays (the backlog, shared by every Δ: 16 bytes per receipt, no object per receipt); the
    thread evaluates a receipt once the node's local clock has passed receipt + Δ, asking each
    source for its retrospective reading of the receipt instant (``readings_columns`` or
    ``readings_at`` / ``reading_at(past_local_ns)``, which may use NTP samples taken after it)
    and writes whole columns. A source without ``reading_at`` gets status
    ``CW_NO_REFINEMENT`` and no values: nothing is invented. Each row also records the actual
    age of the evaluation (≥ Δ). One part-file series per Δ (``cw<Δ>-NNNNNN.parquet``).
    """

    def __init__(
        self,
        sources: Sequence[Any],
        delays_ms: Sequence[int],
        local_now: Callable[[], int],
        directory: Any,
        batch_rows: int = 8192,
        poll_s: float | None = None,
        max_backlog: int = CW_MAX_BACKLOG,
        clock: Scheduler = HOST_CLOCK,
    ) -> None:
        self.clock = clock  # the pass loop waits through it
        self.sources = [s for s in sources if _wants_commit_wait(s)]
        self.max_backlog = max_backlog  # receipts not yet evaluated for every Δ: the bound
        self.shed = 0  # receipts not queued because the backlog was full (no T+Δ columns)
        self.names = [s.name for s in self.sources]
        self.delays_ms = list(delays_ms) if self.sources else []
        self.local_now = local_now
        self._refine = [getattr(s, "reading_at", None) for s in self.sources]
        self._refine_many = [getattr(s, "readings_at", None) for s in self.sources]
        self._columns = [getattr(s, "readings_columns", None) for s in self.sources]
        # The backlog: receipts [base, base + len) of the stream; Δ k has evaluated up to
        # cursor[k] (the longest Δ is the furthest behind). Only the receive loop appends; only
        # the thread drops the prefix every Δ is done with (appends and prefix drops commute).
        self._ids = array("Q")
        self._locals = array("q")
        self._base = 0
        self._cursor = [0] * len(self.delays_ms)
        self._writers = [
            PartWriter(directory, commit_wait_prefix(d), commit_wait_schema(self.names, d),
                       batch_rows)
            for d in self.delays_ms
        ]  # fmt: skip
        shortest = min(self.delays_ms) if self.delays_ms else 1000
        # values stand on what was known at receipt + Δ whenever a pass runs; the period only
        # bounds how long receipts wait (memory) and the recorded age
        self.poll_s = (poll_s if poll_s is not None
                       else min(0.5, max(CW_MIN_POLL_S, shortest / 1000 / 10)))  # fmt: skip
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="commit-wait", daemon=True)
        self.evaluated = [0] * len(self.delays_ms)
        self.batches = 0  # evaluation calls (each: every source, one batch of receipts)
        self.cpu_eval_s = 0.0  # thread CPU time in the sources' retrospective readings
        self.cpu_write_s = 0.0  # thread CPU time appending and writing the cw parts
        self.errors = 0
        self.first_error: str | None = None

    @property
    def active(self) -> bool:
        return bool(self.delays_ms)

    def backlog(self) -> int:
        """Receipts queued and not yet evaluated for the longest Δ."""
        return self._base + len(self._locals) - self._cursor[-1] if self._cursor else 0

    def push(self, event_id: int, local_ns: int) -> None:
        """Queue one receipt (called from the receive loop: two array appends). When the
        backlog is full the receipt is shed for every Δ and counted."""
        if self._base + len(self._locals) - self._cursor[-1] >= self.max_backlog:
            self.shed += 1
            return
        self._ids.append(event_id)
        self._locals.append(local_ns)

    def push_many(self, event_ids: Any, locals_ns: Any) -> None:
        """Queue receipts in arrival order (int arrays; the simulator pushes what arrived
        between two of its steps); shed beyond the backlog bound as ``push`` does."""
        room = self.max_backlog - (self._base + len(self._locals) - self._cursor[-1])
        n = len(locals_ns)
        take = max(0, min(n, room))
        self.shed += n - take
        import numpy as np

        self._ids.frombytes(np.asarray(event_ids[:take], dtype=np.uint64).tobytes())
        self._locals.frombytes(np.asarray(locals_ns[:take], dtype=np.int64).tobytes())

    def next_due_local(self) -> int | None:
        """The local time at which the next queued receipt falls due (for any Δ), or None."""
        out = None
        n = min(len(self._ids), len(self._locals))
        for k, d in enumerate(self.delays_ms):
            i = self._cursor[k] - self._base
            if i < n:
                due = self._locals[i] + d * 1_000_000
                out = due if out is None or due < out else out
        return out

    def start(self) -> CommitWaitEvaluator:
        if self.active:
            self._thread.start()
        return self

    def _evaluate(self, ids, locals_, now_local: int, delta_ns: int = 0) -> list[Any]:  # type: ignore[no-untyped-def]
        """Columns for due receipts evaluated when the clock read ``now_local``: each source's
        retrospective readings of the whole batch at once where the source can (identical
        results), else one by one, on what the source knew at receipt + Δ (``known_until``):
        a later evaluation pass sees no sample taken after then. ``ids``, ``locals_``: int
        arrays."""
        import numpy as np
        import pyarrow as pa

        n = len(ids)
        cols: list[Any] = [pa.array(ids, type=pa.uint64()),
                           pa.array(now_local - locals_, type=pa.int64())]  # fmt: skip
        for fn, many, colfn in zip(self._refine, self._refine_many, self._columns, strict=True):
            if fn is None:
                cols += (pa.nulls(n, pa.int64()), pa.nulls(n, pa.int64()),
                         pa.array(np.full(n, CW_NO_REFINEMENT, dtype=np.int8)))  # fmt: skip
                continue
            if colfn is not None:
                try:
                    _est, lo, hi, st, _t4 = colfn(locals_, locals_ + delta_ns)
                except Exception:  # counted below, receipt by receipt
                    pass
                else:
                    none = st == 0  # UNSYNCHRONIZED: no values
                    cols += (pa.array(lo, mask=none), pa.array(hi, mask=none), pa.array(st))
                    continue
            loc_list = locals_.tolist()
            horizon = (locals_ + delta_ns).tolist()
            rs: list[Reading | None] | None = None
            if many is not None:
                try:
                    rs = many(loc_list, horizon)
                except Exception:  # counted below, receipt by receipt
                    rs = None
            if rs is None:
                rs = [self._one(fn, local, h) for local, h in zip(loc_list, horizon, strict=True)]
            cols.append(pa.array([None if r is None else r[1] for r in rs], type=pa.int64()))
            cols.append(pa.array([None if r is None else r[2] for r in rs], type=pa.int64()))
            cols.append(pa.array([None if r is None else int(r[3]) for r in rs], type=pa.int8()))
        return cols

    def _one(self, fn: Callable[..., Reading], local_ns: int, known_until: int) -> Reading | None:
        """One retrospective reading; a broken source must not lose the trace: count it."""
        try:
            return fn(local_ns, known_until=known_until)
        except Exception as e:
            self.errors += 1
            if self.first_error is None:
                self.first_error = f"{type(e).__name__}: {e}"
            return None

    def run_due(self, budget_s: float | None = None) -> int:
        """Evaluate every queued receipt whose T+Δ has passed (within ``budget_s`` of wall time
        if given), in batches of at most CW_BATCH; return how many were done."""
        import numpy as np

        done = 0
        until = None if budget_s is None else monotonic_s() + budget_s
        for k, d in enumerate(self.delays_ms):
            w = self._writers[k]
            delta = d * 1_000_000
            # what is due at this instant, not what falls due while evaluating: chasing that
            # frontier would evaluate a trickle of receipts per call, many calls per poll
            now_local = self.local_now()
            while True:
                if until is not None and monotonic_s() > until:
                    break
                start = self._cursor[k] - self._base
                avail = min(len(self._ids), len(self._locals)) - start
                if avail <= 0:
                    break
                stop = start + min(avail, CW_BATCH)
                locs = np.frombuffer(self._locals[start:stop], dtype=np.int64)  # copies
                late = locs + delta > now_local  # receipts in arrival order: due ones lead
                n = int(np.argmax(late)) if late.any() else len(locs)
                if n == 0:
                    break
                ids = np.frombuffer(self._ids[start : start + n], dtype=np.uint64)
                c0 = thread_cpu_s()
                cols = self._evaluate(ids, locs[:n], self.local_now(), delta)  # age: as evaluated
                c1 = thread_cpu_s()
                w.append_columns(cols)
                self.cpu_eval_s += c1 - c0
                self.cpu_write_s += thread_cpu_s() - c1
                self.batches += 1
                self._cursor[k] += n
                done += n
                self.evaluated[k] += n
        self._compact()
        return done

    def _compact(self) -> None:
        """Drop the backlog's prefix every Δ has evaluated, once it is worth the copy."""
        if not self._cursor:
            return
        k = min(self._cursor) - self._base
        if k > 0 and k >= len(self._locals) // 2:
            del self._ids[:k]
            del self._locals[:k]
            self._base += k

    def _run(self) -> None:
        period = round(self.poll_s * 1e9)
        while self.clock.wait_until(self.clock.now_ns() + period, self._stop):
            self.run_due()

    def stop(self) -> dict[str, Any]:
        """Stop the thread, evaluate what is due, flush; receipts not yet due are counted."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if self.active:
            self.run_due(CW_STOP_BUDGET_S)  # a backlog beyond the budget stays unevaluated
        for w in self._writers:
            w.flush()
        end = self._base + min(len(self._ids), len(self._locals))
        return {
            "commit_wait_ms": self.delays_ms,
            "commit_wait_sources": self.names,
            "commit_wait_evaluated": dict(zip(map(str, self.delays_ms), self.evaluated,
                                              strict=True)),
            "commit_wait_not_done_at_stop": {str(d): end - c for d, c in
                                            zip(self.delays_ms, self._cursor, strict=True)},
            "commit_wait_errors": self.errors,
            "commit_wait_shed": self.shed,
            "commit_wait_batches": self.batches,
            "commit_wait_cpu_eval_s": round(self.cpu_eval_s, 3),
            "commit_wait_cpu_write_s": round(self.cpu_write_s, 3),
            "commit_wait_first_error": self.first_error,
        }  # fmt: skip


def _wants_commit_wait(source: Any) -> bool:
    """Bounded sources and any source with retrospective refinement are re-evaluated."""
    return bool(getattr(source, "bounded", False)) or hasattr(source, "reading_at")
