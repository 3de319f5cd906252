"""Trace replay: a node clock that follows a recorded offset series, so drift recorded on real
hardware can be replayed on an emulated node.

The CSV holds elapsed seconds (since the recording began, mapped to true time ``t0_ns``) and
the clock's offset in milliseconds with the oscillator's sign convention (local − true;
positive: the clock is ahead). Column names are configurable. Between points the offset is
interpolated linearly; before the first and after the last point it is held (never
extrapolated). The replayed clock has no steps of its own, so monotonic = local.
"""

from __future__ import annotations

import csv
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path

NS_PER_S = 1_000_000_000


@dataclass(slots=True)
class ReplayOscillator:
    """An oscillator whose error follows a recorded series (integer ns, sorted by time)."""

    times_ns: list[int]  # elapsed since t0, ns (strictly increasing)
    offsets_ns: list[int]  # local − true at those instants, ns
    t0_ns: int = 0  # true time of elapsed 0
    gapless: bool = True  # no steps: local == monotonic, gap 0

    def __post_init__(self) -> None:
        if not self.times_ns or len(self.times_ns) != len(self.offsets_ns):
            raise ValueError("a replay needs at least one (time, offset) point")
        if any(b <= a for a, b in zip(self.times_ns, self.times_ns[1:], strict=False)):
            raise ValueError("replay times must be strictly increasing")

    def offset_at(self, truth_ns: int) -> int:
        """local − true at a true instant (linear interpolation, held at the ends)."""
        e = truth_ns - self.t0_ns
        ts, os_ = self.times_ns, self.offsets_ns
        k = bisect_right(ts, e)
        if k == 0:
            return os_[0]
        if k == len(ts):
            return os_[-1]
        t_a, t_b, o_a, o_b = ts[k - 1], ts[k], os_[k - 1], os_[k]
        return o_a + ((o_b - o_a) * (e - t_a)) // (t_b - t_a)

    def local_at(self, truth_ns: int) -> int:
        return truth_ns + self.offset_at(truth_ns)

    def monotonic_at(self, truth_ns: int) -> int:
        return self.local_at(truth_ns)

    def gap_at(self, truth_ns: int) -> int:
        return 0

    def gaps_at(self, truth_ns: int) -> tuple[int, int]:
        return 0, 0

    def error_at(self, truth_ns: int) -> int:
        return self.offset_at(truth_ns)

    @classmethod
    def from_csv(
        cls,
        path: str | Path,
        t0_ns: int = 0,
        time_column: str = "elapsed_s",
        offset_column: str = "offset_ms",
    ) -> ReplayOscillator:
        """Load a recorded series; errors name the file, line and column."""
        p = Path(path)
        times: list[int] = []
        offsets: list[int] = []
        with p.open(newline="") as fh:
            reader = csv.DictReader(fh)
            cols = reader.fieldnames or []
            for c in (time_column, offset_column):
                if c not in cols:
                    raise ValueError(f"{p}: no column {c!r} (columns: {', '.join(cols)})")
            for row in reader:
                try:
                    times.append(round(float(row[time_column]) * NS_PER_S))
                    offsets.append(round(float(row[offset_column]) * 1_000_000))
                except (TypeError, ValueError):
                    raise ValueError(f"{p}: line {reader.line_num}: not a number") from None
        try:
            return cls(times, offsets, t0_ns)
        except ValueError as e:
            raise ValueError(f"{p}: {e}") from None
