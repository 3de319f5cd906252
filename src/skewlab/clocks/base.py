"""What a clock source answers: a reading with an estimate, an interval and a status."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any, NamedTuple, Protocol


class Status(IntEnum):
    """Synchronization status of a reading (stored as int8 in traces)."""

    UNSYNCHRONIZED = 0  # no bound at all: estimate/earliest/latest are None
    FREE_RUNNING = 1  # no recent sync; the bound is still valid but growing
    SYNCHRONIZED = 2  # recent sync; bound valid


class Reading(NamedTuple):
    """A source's answer at one local instant, in integer nanoseconds of true-time scale.

    Point sources have earliest == latest == estimate. When the source has no answer
    (UNSYNCHRONIZED) all three are None: a value is never invented. An immutable named tuple
    (not a frozen dataclass) because it is built on every read in the worker's hot path and a
    tuple is about 3x cheaper to construct.
    """

    estimate_ns: int | None
    earliest_ns: int | None
    latest_ns: int | None
    status: Status
    as_of_ns: int | None = None  # local time of the sync sample this reading stands on

    @staticmethod
    def point(value_ns: int, status: Status, as_of_ns: int | None = None) -> Reading:
        return Reading(value_ns, value_ns, value_ns, status, as_of_ns)

    @staticmethod
    def none() -> Reading:
        return _NONE


_NONE = Reading(None, None, None, Status.UNSYNCHRONIZED, None)


class ClockSource(Protocol):
    """A clock source turns one local-clock reading into a :class:`Reading`.

    ``read`` must be cheap (it runs in the worker's receive loop) and must not block.
    ``host_ns``, when given, is the host-clock reading that ``local_ns`` was derived from (the
    same instant): a source that consults the node clock's state at the reading instant (step
    detection) uses it instead of reading the clock a second, later time.
    """

    name: str
    bounded: bool

    def read(self, local_ns: int, host_ns: int | None = None) -> Reading: ...


@dataclass
class Readings:
    """One source's readings of many instants (numpy arrays): int64 ``estimate``/``earliest``/
    ``latest``, meaningful where ``valid``; int8 ``status`` (0 where not valid: UNSYNCHRONIZED,
    no value, written as null). The array form of :class:`Reading` (simulator)."""

    estimate: Any
    earliest: Any
    latest: Any
    status: Any
    valid: Any

    def take(self, idx: Any) -> Readings:
        return Readings(self.estimate[idx], self.earliest[idx], self.latest[idx],
                        self.status[idx], self.valid[idx])  # fmt: skip
