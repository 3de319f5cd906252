"""Small statistics helpers shared by every metric: Wilson intervals, nearest-rank percentiles.

One home for each formula (docs/METHODOLOGY.md, "Statistics").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from skewlab.analysis.stats_types import Rate

Z95 = 1.959963984540054  # two-sided 95% standard normal quantile

# Nested counts as collect_row returns them (keys from a metric's expressions), before a
# ``*_finish`` function turns them into their typed stats structure (analysis/stats_types.py).
Raw = dict[str, Any]


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval for k successes in n trials; None when n == 0 (no information)."""
    if n <= 0:
        return None
    if not 0 <= k <= n:
        raise ValueError(f"wilson: need 0 <= k <= n, got k={k} n={n}")
    p = k / n
    z2 = z * z
    den = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / den
    # exact at the edges: k = 0 gives centre == half and k = n centre + half == 1 in exact
    # arithmetic, but floats leave ~1e-19 (a negative error bar below a 0 rate in figures)
    lo = 0.0 if k == 0 else max(0.0, centre - half)
    hi = 1.0 if k == n else min(1.0, centre + half)
    return (lo, hi)


def rate(k: int | None, n: int | None) -> Rate | None:
    """A rate with its Wilson 95% interval; None when unavailable (k or n unknown)."""
    if k is None or n is None:
        return None
    ci = wilson(k, n)
    return {"k": k, "n": n, "rate": k / n if n else None, "ci95": list(ci) if ci else None}


# Percentiles reported everywhere, as (numerator, denominator) so the rank is exact integer math.
PERCENTILES: dict[str, tuple[int, int]] = {"p50": (1, 2), "p99": (99, 100)}


def nearest_rank(x: pl.Expr, num: int, den: int) -> pl.Expr:
    """Nearest-rank percentile q = num/den of the non-null values of x: sorted[ceil(q·n) − 1].

    Null when x has no values. Integer arithmetic, so the rank never suffers float rounding.
    """
    n = x.count()
    idx = ((n * num + den - 1) // den - 1).clip(lower_bound=0)
    # Polars' "lower" quantile takes sorted[floor(q'·(n − 1))] by selection (no full sort);
    # q' = (idx + ½)/(n − 1) makes that floor exactly idx, free of float rounding.
    q = ((idx.cast(pl.Float64) + 0.5) / (n - 1).clip(lower_bound=1)).clip(upper_bound=1.0)
    return x.quantile(q, interpolation="lower").cast(pl.Int64)


def nearest_rank_index(n: int, num: int, den: int) -> int:
    """0-based index of the nearest-rank percentile num/den among n sorted values: ⌈q·n⌉ − 1."""
    return max(0, (n * num + den - 1) // den - 1)


@dataclass(frozen=True)
class Percentile:
    """A nearest-rank percentile of ``x``, evaluated by collect_row with one selection
    (numpy partition) per distinct expression instead of a polars quantile per percentile."""

    x: pl.Expr
    num: int
    den: int


# A metric's aggregations, keyed by the path of their raw value ("<source>/error/n"...).
Exprs = dict[str, pl.Expr | Percentile]


def dist_exprs(x: pl.Expr, prefix: str) -> Exprs:
    """Summary of a distribution (ns): n, mean, min, p50, p99, max, keyed ``prefix/<stat>``."""
    out: Exprs = {
        f"{prefix}/n": x.count(),
        f"{prefix}/mean": x.mean(),
        f"{prefix}/min": x.min(),
        f"{prefix}/max": x.max(),
    }
    for name, (num, den) in PERCENTILES.items():
        out[f"{prefix}/{name}"] = Percentile(x, num, den)
    return out


def unflatten(row: dict[str, Any]) -> Raw:
    """{"a/b/c": v} → {"a": {"b": {"c": v}}}."""
    out: Raw = {}
    for key, v in row.items():
        parts = key.split("/")
        d = out
        for p in parts[:-1]:
            d = d.setdefault(p, {})
        d[parts[-1]] = v
    return out


def _percentiles(df: pl.DataFrame, items: dict[str, Percentile]) -> dict[str, int | None]:
    """Evaluate every Percentile on an in-memory frame: each distinct expression is computed
    once, its non-null values partitioned once at all requested ranks (same ranks as
    nearest_rank)."""
    exprs: list[pl.Expr] = []
    slot: dict[str, int] = {}
    for key, it in items.items():
        for i, e in enumerate(exprs):
            if e.meta.eq(it.x):
                slot[key] = i
                break
        else:
            slot[key] = len(exprs)
            exprs.append(it.x)
    cols = df.select([e.alias(f"x{i}") for i, e in enumerate(exprs)])
    out: dict[str, int | None] = {}
    for i in range(len(exprs)):
        keys = [k for k, j in slot.items() if j == i]
        v = cols.get_column(f"x{i}").drop_nulls().to_numpy()
        if v.size == 0:
            out.update(dict.fromkeys(keys, None))
            continue
        ranks = {k: nearest_rank_index(v.size, items[k].num, items[k].den) for k in keys}
        part = np.partition(v, sorted(set(ranks.values())))
        out.update({k: int(part[r]) for k, r in ranks.items()})
    return out


def collect_row(frame: pl.LazyFrame | pl.DataFrame, exprs: Exprs) -> Raw:
    """Evaluate many aggregations over ``frame`` (scalars in one select, percentiles by
    selection); returns the nested result."""
    if not exprs:
        return {}
    scalars = {k: e for k, e in exprs.items() if isinstance(e, pl.Expr)}
    pcts = {k: e for k, e in exprs.items() if isinstance(e, Percentile)}
    if pcts and isinstance(frame, pl.LazyFrame):
        frame = frame.collect()
    lf = frame.lazy() if isinstance(frame, pl.DataFrame) else frame
    row: dict[str, Any] = {}
    if scalars:
        row = lf.select([e.alias(k) for k, e in scalars.items()]).collect().row(0, named=True)
    if pcts:
        assert isinstance(frame, pl.DataFrame)
        row.update(_percentiles(frame, pcts))
    return unflatten({k: row[k] for k in exprs})
