"""Readings of whole arrays of instants through the sources' own formulas: the worker's receive
loop (batches of receipts) and the simulator (whole stretches of virtual time) alike.

Between two NTP samples a source's state is fixed (``snapshot()``), so a reading is a function
of the local reading (and, for ``skewlab``, the node clock's gaps). :class:`SourceTrack` lets
the real source objects process every sample exactly as in a node, keeps the snapshot each one
holds after every sample with the true instant from which it is visible, then asks each source
to evaluate whole arrays of readings against those snapshots (``read_many``: the same kernels
as ``read``, on numpy arrays).
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from skewlab.clocks.base import Readings
from skewlab.clocks.sources import SOURCES


def simulable(source: Any) -> bool:
    """A source has an array form when it can read arrays against snapshots (sources that read
    a host service, such as chrony or ChronoTick, do not: they are read at the instant)."""
    return callable(getattr(source, "read_many", None)) and callable(
        getattr(source, "snapshot", None)
    )


SIMULATED_SOURCES = [n for n, f in SOURCES.items() if simulable(f)]


class NotSimulable(ValueError):
    """A source that reads a host service (chrony, ChronoTick...) has no virtual-time form."""


class SourceTrack:
    """Records the snapshot of each source after every NTP sample, then reads arrays.

    ``record(visible_truth_ns)`` is called right after each ``SyncState.add`` (every source has
    taken the sample): from that true instant on, readings use the new state. A reading at true
    instant t stands on the latest snapshot recorded with a visible instant ≤ t (none before the
    first: no value).

    One thread may ``record`` while another ``read``s (the worker's poller and receive loop):
    ``record`` appends every snapshot before the visible instant, and ``read`` looks only at the
    visible instants, so it never indexes a snapshot that is not there yet.
    """

    def __init__(self, sources: Sequence[Any]) -> None:
        for s in sources:
            if not simulable(s):
                raise NotSimulable(
                    f"source {s.name!r} reads a host service and cannot run in virtual time "
                    f"(simulated sources: {', '.join(SIMULATED_SOURCES)})"
                )
        self.sources = list(sources)
        self.visible: list[int] = []
        self._snaps: list[list[Any]] = [[] for _ in self.sources]

    def record(self, visible_truth_ns: int) -> None:
        for snaps, s in zip(self._snaps, self.sources, strict=True):
            snaps.append(s.snapshot())
        self.visible.append(visible_truth_ns)  # last: the snapshots are in place

    def follow(self, state: Any, now_ns: Callable[[], int]) -> None:
        """Record now, and after every sample the sync state ``state`` takes from now on, with
        the true instant ``now_ns()`` (a running node: the poller thread adds samples while
        the receive loop reads). Subscribed after the sources, so they have taken the sample
        when it is recorded; visible instants stay ascending (one lock for both records)."""
        lock = threading.Lock()

        def _on(_sample: Any) -> None:
            with lock:
                self.record(now_ns())

        state.subscribe(_on)
        with lock:
            self.record(now_ns())

    def read(
        self,
        truth: np.ndarray,
        local: np.ndarray,
        gap: np.ndarray | None = None,
        step_gap: np.ndarray | None = None,
    ) -> list[Readings]:
        """Readings of every source at true instants ``truth`` (ascending or not) whose local
        readings are ``local``; ``gap``/``step_gap`` (local − monotonic) are needed when the
        oscillator is not gapless. Only the snapshots the instants stand on are handed to the
        sources (a batch of receipts spans one or two of a long run's thousands)."""
        visible = self.visible
        n = len(visible)
        lo = hi = -1
        if len(truth):
            lo = bisect_right(visible, int(np.min(truth)), 0, n) - 1
            hi = bisect_right(visible, int(np.max(truth)), 0, n) - 1
        lo = max(lo, 0)
        window = np.asarray(visible[lo : hi + 1], dtype=np.int64)
        k = np.searchsorted(window, truth, side="right") - 1  # -1: before the first snapshot
        return [s.read_many(snaps[lo : hi + 1], k, local, gap, step_gap)
                for s, snaps in zip(self.sources, self._snaps, strict=True)]  # fmt: skip


__all__ = ["SIMULATED_SOURCES", "NotSimulable", "Readings", "SourceTrack", "simulable"]
