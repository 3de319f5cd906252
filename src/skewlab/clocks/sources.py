"""Clock sources: each turns one local-clock reading into a Reading.

Registered by name in ``SOURCES``; ``make_sources`` builds them for a node from the spec.
Point sources report earliest == latest == estimate.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from skewlab.clocks.base import ClockSource, Reading, Status
from skewlab.clocks.sync import SyncState


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


SourceFactory = Callable[..., ClockSource]

SOURCES: dict[str, SourceFactory] = {
    "system": SystemSource,
    "ntp": NtpPointSource,
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
