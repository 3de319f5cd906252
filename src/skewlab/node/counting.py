"""Bounded samples of a hot loop's per-event costs and their nearest-rank summary (worker and
coordinator counts).
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence

MAX_COST_SAMPLES = 200_000  # per-packet cost samples kept (evenly strided beyond this)


def percentile(sorted_values: Sequence[int], q: int) -> int | None:
    """Nearest-rank percentile (integer q in 1..100) of an ascending sequence; None if empty."""
    n = len(sorted_values)
    if n == 0:
        return None
    rank = max(1, -(-q * n // 100))  # ceil(q·n/100), exact in integers
    return int(sorted_values[rank - 1])


class Strided:
    """Every ``stride``-th value of a stream of ``total`` (at most about ``cap`` values), in
    a buffer allocated and zero-filled up front, so a long run's memory does not creep."""

    def __init__(self, total: int, cap: int = MAX_COST_SAMPLES) -> None:
        self.stride = max(1, total // cap)
        self._buf = array("q", bytes(8 * (total // self.stride + 1)))
        self._n = 0

    def add(self, value: int) -> None:
        if self._n < len(self._buf):
            self._buf[self._n] = value
            self._n += 1

    def add_many(self, values: Sequence[int]) -> None:
        """``add`` of each value in order (an int64 array or a sequence), as far as room lasts."""
        room = len(self._buf) - self._n
        take = values[:room]
        k = len(take)
        vals = take.tolist() if hasattr(take, "tolist") else [int(x) for x in take]
        self._buf[self._n : self._n + k] = array("q", vals)
        self._n += k

    def values(self) -> array:
        return self._buf[: self._n]


def _summary(samples: array, prefix: str) -> dict[str, int | None]:
    s = sorted(samples)
    return {
        f"{prefix}_samples": len(s),
        f"{prefix}_median_ns": percentile(s, 50),
        f"{prefix}_p99_ns": percentile(s, 99),
        f"{prefix}_max_ns": int(s[-1]) if s else None,
    }
