"""Readings of whole arrays of instants for the simulator, through the sources' own formulas.

Between two NTP samples a source's state is fixed (``snapshot()``), so a reading is a function
of the local reading (and, for ``skewlab``, the node clock's gaps). :class:`SourceTrack` lets
the real source objects process every sample exactly as in a node, keeps the snapshot each one
holds after every sample, then asks each source to evaluate whole arrays of readings against
those snapshots (``read_many``: the same kernels as ``read``, on numpy arrays).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from skewlab.clocks.base import Readings
from skewlab.clocks.sources import SOURCES


def simulable(source: Any) -> bool:
    """A source has a virtual-time form when it can read arrays against snapshots (sources
    that read a host service, such as chrony or ChronoTick, do not)."""
    return callable(getattr(source, "read_many", None)) and callable(
        getattr(source, "snapshot", None)
    )


SIMULATED_SOURCES = [n for n, f in SOURCES.items() if simulable(f)]


class NotSimulable(ValueError):
    """A source that reads a host service (chrony, ChronoTick...) has no virtual-time form."""


class SourceTrack:
    """Records the snapshot of each source after every NTP sample, then reads arrays.

    ``record(visible_truth_ns)`` is called right after each ``SyncState.add``: from that true
    instant on, readings use the new state.
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
        self.visible.append(visible_truth_ns)
        for snaps, s in zip(self._snaps, self.sources, strict=True):
            snaps.append(s.snapshot())

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
        return [s.read_many(snaps, k, local, gap, step_gap)
                for s, snaps in zip(self.sources, self._snaps, strict=True)]  # fmt: skip


__all__ = ["SIMULATED_SOURCES", "NotSimulable", "Readings", "SourceTrack", "simulable"]
