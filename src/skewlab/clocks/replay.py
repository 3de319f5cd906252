"""Trace replay: a node clock that follows a recorded error series, so drift recorded on real
hardware can be replayed on an emulated node (``[[nodes]] replay`` in the experiment file).

The series is read by ``clocks/series.py`` (CSV, columns, units and sign configurable) and
becomes the oscillator's ``Replay`` term (``clocks/oscillator.py``): added to the node's other
clock terms, linearly interpolated between points, held (never extrapolated) before the first
and after the last point. A replayed error moves the monotonic and the realtime clock alike
(a frequency term: no steps of its own).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from skewlab.clocks.oscillator import Oscillator, Replay
from skewlab.clocks.series import UNIT_NS, read_series

NS_PER_S = 1_000_000_000


class ReplaySettings(Protocol):
    """What a replay needs from the spec (``spec.ReplaySpec``)."""

    file: str
    time_column: str
    offset_column: str
    time_unit: str
    offset_unit: str
    sign: str
    start_s: float | None


def replay_from_spec(r: ReplaySettings, t0_ns: int) -> Replay:
    """The replay term of a node: recording time ``start_s`` (default: the first row's time)
    falls on the run's true time ``t0_ns``."""
    times, offsets = read_series(
        r.file, r.time_column, r.offset_column, r.time_unit, r.offset_unit, r.sign
    )
    start = times[0] if r.start_s is None else round(r.start_s * NS_PER_S)
    return Replay(times, offsets, t0_ns, start)


class ReplayOscillator:
    """A node clock that only replays a series (offset 0, no drift): ``from_csv``."""

    @staticmethod
    def from_csv(
        path: str | Path,
        t0_ns: int = 0,
        time_column: str = "elapsed_s",
        offset_column: str = "offset_ms",
        time_unit: str = "s",
        offset_unit: str = "ms",
        sign: str = "clock_minus_reference",
    ) -> Oscillator:
        """An oscillator following the series of ``path`` (recording time 0 at ``t0_ns``);
        errors are one line naming the file, line and column (``series.SeriesError``)."""
        times, offsets = read_series(path, time_column, offset_column, time_unit, offset_unit,
                                     sign)  # fmt: skip
        return Oscillator(t0_ns=t0_ns, replay=Replay(times, offsets, t0_ns, 0))


__all__ = ["UNIT_NS", "ReplayOscillator", "ReplaySettings", "replay_from_spec"]
