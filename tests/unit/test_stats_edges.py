"""Wilson intervals at the edges are exact: a 0 rate's interval starts at 0 and a rate of 1's
ends at 1 (floats used to leave ~1e-19, a negative error bar that crashed compare's figure)."""

from __future__ import annotations

from skewlab.analysis.stats_util import wilson


def test_wilson_edges_are_exact() -> None:
    for n in (1, 7, 40_000, 10_000_000):
        lo0, hi0 = wilson(0, n)  # type: ignore[misc]
        lo1, hi1 = wilson(n, n)  # type: ignore[misc]
        assert lo0 == 0.0 and 0.0 < hi0 < 1.0
        assert hi1 == 1.0 and 0.0 < lo1 < 1.0
        # interior intervals contain their rate
        k = max(1, n // 3)
        lo, hi = wilson(k, n)  # type: ignore[misc]
        assert lo <= k / n <= hi
