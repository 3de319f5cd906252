"""Small statistics helpers shared by every metric: intervals of rates, nearest-rank percentiles.

One home for each formula (docs/METHODOLOGY.md, "Statistics"). A rate's decisions are not
independent trials (receipts stamped between two NTP samples share one clock error, misses come
in runs), so a rate whose counts carry their split over time blocks (:class:`Counts`) gets the
block interval (:func:`block_interval`); Wilson's interval (:func:`wilson`) is kept for trials
that really are independent (e.g. seeded repetitions of a whole run).
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


def wilson_eff(p: float, n_eff: float, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval at rate p for a (possibly fractional) effective number of trials;
    never excludes p itself."""
    z2 = z * z
    den = 1 + z2 / n_eff
    centre = (p + z2 / (2 * n_eff)) / den
    half = z * math.sqrt(max(0.0, p * (1 - p)) / n_eff + z2 / (4 * n_eff * n_eff)) / den
    lo = 0.0 if p <= 0 else max(0.0, min(p, centre - half))
    hi = 1.0 if p >= 1 else min(1.0, max(p, centre + half))
    return (lo, hi)


# Student t quantiles, two-sided 95% (0.975), for 1..30 degrees of freedom; beyond, the
# Cornish-Fisher expansion around Z95 (error < 1e-4 there).
_T975 = (
    12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281, 2.2010,
    2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860, 2.0796, 2.0739,
    2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
)  # fmt: skip


def t975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` ≥ 1 degrees of freedom."""
    if df < 1:
        raise ValueError(f"t975: need df >= 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z, v = Z95, float(df)
    return (
        z
        + (z**3 + z) / (4 * v)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * v**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * v**3)
    )


# A block length is used while at least this many blocks hold decisions (the shortest, the
# base block, always is).
MIN_BLOCKS = 8
# Fewer blocks than this holding the rarer outcome: the data cannot show how clustered that
# outcome is, so the interval is at least as wide as if every block were one trial.
MIN_OUTCOME_BLOCKS = 5


class Counts(int):
    """A count together with its split over the analysis's time blocks (``blocks``: int64 per
    block, summing to the count). Adding or subtracting two Counts adds their splits, so counts
    derived by arithmetic (``decided − correct``) and counts pooled over workers or pairs keep
    theirs; anything else degrades to a plain int. A plain int otherwise (JSON, comparisons)."""

    blocks: np.ndarray

    def __new__(cls, blocks: np.ndarray) -> Counts:
        b = np.asarray(blocks, dtype=np.int64)
        obj = super().__new__(cls, int(b.sum()))
        obj.blocks = b
        return obj

    def _combine(self, other: Any, sign: int) -> Any:
        if isinstance(other, Counts) and other.blocks.shape == self.blocks.shape:
            return Counts(self.blocks + sign * other.blocks)
        if type(other) is int and other == 0:  # sum() starts from 0
            return self
        return NotImplemented

    def __add__(self, other: Any) -> Any:
        r = self._combine(other, 1)
        return int(self) + other if r is NotImplemented else r

    def __radd__(self, other: Any) -> Any:
        r = self._combine(other, 1)
        return other + int(self) if r is NotImplemented else r

    def __sub__(self, other: Any) -> Any:
        r = self._combine(other, -1)
        return int(self) - other if r is NotImplemented else r

    def __rsub__(self, other: Any) -> Any:
        if type(other) is int and other == 0:
            return Counts(-self.blocks)
        return other - int(self)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Counts, (self.blocks,))


def plain(tree: Any) -> Any:
    """The same document with every Counts turned into a plain int (what stats.json holds)."""
    if isinstance(tree, dict):
        return {k: plain(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [plain(v) for v in tree]
    if isinstance(tree, Counts):
        return int(tree)
    return tree


def _merge(x: np.ndarray, m: int) -> np.ndarray:
    """Sums of ``m`` consecutive blocks (the last one takes the remainder)."""
    b = x.size // m
    out = x[: b * m].reshape(b, m).sum(axis=1)
    if b * m < x.size:
        if b == 0:
            return x.sum(keepdims=True)
        out[-1] += x[b * m :].sum()
    return out


def _cluster_score(k: np.ndarray, n: np.ndarray, t: float) -> tuple[float, float]:
    """Score interval of K/N with blocks as independent clusters: every p0 with
    (K − p0·N)² ≤ t²·B/(B−1)·Σ(k_b − p0·n_b)² (B blocks holding decisions); [0, 1] if unbounded."""
    keep = n > 0
    kf, nf = k[keep].astype(np.float64), n[keep].astype(np.float64)
    b = int(kf.size)
    if b < 2:
        return (0.0, 1.0)
    big_k, big_n = float(kf.sum()), float(nf.sum())
    c = t * t * b / (b - 1)
    a2 = big_n * big_n - c * float((nf * nf).sum())
    a1 = -2.0 * (big_k * big_n - c * float((kf * nf).sum()))
    a0 = big_k * big_k - c * float((kf * kf).sum())
    if a2 <= 0:
        return (0.0, 1.0)
    disc = max(0.0, a1 * a1 - 4 * a2 * a0)
    sq = math.sqrt(disc)
    return ((-a1 - sq) / (2 * a2), (-a1 + sq) / (2 * a2))


@dataclass(frozen=True)
class BlockInterval:
    """A rate's 95% interval over time blocks, with what it rests on."""

    lo: float
    hi: float
    n_eff: float  # p(1−p)/variance: the independent trials the blocks are worth
    blocks: int  # base blocks holding at least one decision
    longest: int  # base blocks merged into one at the longest block length used


def block_interval(k_b: np.ndarray, n_b: np.ndarray) -> BlockInterval | None:
    """95% interval of Σk/Σn from per-block counts on consecutive time blocks (docs/
    METHODOLOGY.md, "Statistics"): the cluster score interval with a Student t quantile
    (blocks − 1 degrees of freedom) at the base block length and at every doubling of it that
    leaves at least MIN_BLOCKS blocks; the reported interval is the hull of them (the longest
    block length catches dependence that outlasts a block). When fewer than
    MIN_OUTCOME_BLOCKS blocks hold the rarer outcome (always when the rate is 0 or 1), the hull
    also takes Wilson's interval with one trial per block; it always takes Wilson's interval on
    the n decisions (never more precise than independent trials). None when n = 0."""
    k_b, n_b = np.asarray(k_b, dtype=np.int64), np.asarray(n_b, dtype=np.int64)
    big_k, big_n = int(k_b.sum()), int(n_b.sum())
    if big_n <= 0:
        return None
    p = big_k / big_n
    blocks = int((n_b > 0).sum())
    lo, hi, var, m, longest = p, p, 0.0, 1, 1
    while True:
        k, n = _merge(k_b, m), _merge(n_b, m)
        b = int((n > 0).sum())
        if m > 1 and b < MIN_BLOCKS:
            break
        if b >= 2:
            low, high = _cluster_score(k, n, t975(b - 1))
            lo, hi, longest = min(lo, low), max(hi, high), m
            r = (k - p * n)[n > 0]
            var = max(var, float((r * r).sum()) * b / (b - 1) / (big_n * big_n))
        if b < 2 * MIN_BLOCKS:
            break
        m *= 2
    pq = p * (1 - p)
    n_eff = float(big_n) if var <= 0 else min(float(big_n), max(1.0, pq / var))
    rare = np.minimum(k_b, n_b - k_b)
    if blocks < 2 or int((rare > 0).sum()) < MIN_OUTCOME_BLOCKS:
        n_eff = min(n_eff, float(max(1, blocks)))
        wl, wh = wilson_eff(p, max(1, blocks))
        lo, hi = min(lo, wl), max(hi, wh)
    wl, wh = wilson_eff(p, float(big_n))  # never more precise than n independent trials
    lo, hi = min(lo, wl), max(hi, wh)
    lo = 0.0 if big_k == 0 else max(0.0, min(lo, p))
    hi = 1.0 if big_k == big_n else min(1.0, max(hi, p))
    return BlockInterval(lo, hi, n_eff, blocks, longest)


def rate(k: int | None, n: int | None) -> Rate | None:
    """A rate with its 95% interval; None when unavailable (k or n unknown). Counts that carry
    their split over time blocks get the block interval (method "block"); plain counts are
    taken as independent trials (method "wilson")."""
    if k is None or n is None:
        return None
    if isinstance(k, Counts) and isinstance(n, Counts) and k.blocks.shape == n.blocks.shape:
        bi = block_interval(k.blocks, n.blocks)
        return {
            "k": k,
            "n": n,
            "rate": k / n if n else None,
            "ci95": [bi.lo, bi.hi] if bi else None,
            "method": "block",
            "n_eff": bi.n_eff if bi else None,
            "blocks": bi.blocks if bi else 0,
        }
    ci = wilson(k, n)
    return {
        "k": k,
        "n": n,
        "rate": k / n if n else None,
        "ci95": list(ci) if ci else None,
        "method": "wilson",
        "n_eff": float(n) if n else None,
        "blocks": None,
    }


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

# Output name marking a count aggregation: collect_row splits those over time blocks.
COUNT = "__count__"


def count(mask: pl.Expr) -> pl.Expr:
    """Count of rows where ``mask`` is true (null counts as false), split over time blocks by
    collect_row (which sums the mask per block: the mask rides along on the expression)."""
    m = mask.fill_null(False)
    e = m.sum().alias(COUNT)
    e._skewlab_mask = m  # type: ignore[attr-defined]
    return e


def rows() -> pl.Expr:
    """Count of rows, split over time blocks by collect_row."""
    e = pl.len().alias(COUNT)
    e._skewlab_mask = pl.lit(True)  # type: ignore[attr-defined]
    return e


def _is_count(e: pl.Expr) -> bool:
    return e.meta.output_name() == COUNT


@dataclass(frozen=True)
class Blocks:
    """The time blocks of a frame: column ``column`` holds each row's block number in
    [0, count) (see analysis/run.py, ``block_grid``)."""

    column: str
    count: int


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


def collect_row(
    frame: pl.LazyFrame | pl.DataFrame, exprs: Exprs, blocks: Blocks | None = None
) -> Raw:
    """Evaluate many aggregations over ``frame`` (scalars in one select, percentiles by
    selection); returns the nested result. With ``blocks``, every count (:func:`count`,
    :func:`rows`) is evaluated per time block in one group-by and returned as :class:`Counts`."""
    if not exprs:
        return {}
    scalars = {k: e for k, e in exprs.items() if isinstance(e, pl.Expr)}
    pcts = {k: e for k, e in exprs.items() if isinstance(e, Percentile)}
    counts: dict[str, pl.Expr] = {}
    if blocks is not None:
        counts = {k: e for k, e in scalars.items() if _is_count(e)}
        scalars = {k: e for k, e in scalars.items() if k not in counts}
    if pcts and isinstance(frame, pl.LazyFrame):
        frame = frame.collect()
    lf = frame.lazy() if isinstance(frame, pl.DataFrame) else frame
    row: dict[str, Any] = {}
    if scalars:
        row = lf.select([e.alias(k) for k, e in scalars.items()]).collect().row(0, named=True)
    if counts:
        assert blocks is not None
        row.update(_block_counts(lf, counts, blocks))
    if pcts:
        assert isinstance(frame, pl.DataFrame)
        row.update(_percentiles(frame, pcts))
    return unflatten({k: row[k] for k in exprs})


# Per-run slice sums cost ~3 µs each, a numpy segment sum ~3 ns per row: slices while the
# frame has fewer runs of one block than rows / this.
_ROWS_PER_RUN_FOR_SLICES = 1000


def _block_counts(
    lf: pl.LazyFrame, counts: dict[str, pl.Expr], blocks: Blocks
) -> dict[str, Counts]:
    """Every count split over the time blocks: each mask evaluated once over the whole frame,
    then summed over each run of consecutive rows of one block (rows come roughly in time
    order, so runs are few: the boolean slices' sums are popcounts) and the runs added into
    their blocks. A count whose mask is unknown is evaluated per block by a group-by."""
    masks = [getattr(e, "_skewlab_mask", None) for e in counts.values()]
    sel = lf.select(
        pl.col(blocks.column).cast(pl.Int64),
        *[m.alias(f"c{i}") for i, m in enumerate(masks) if m is not None],
    ).collect()
    block = sel.get_column(blocks.column).to_numpy()
    n = block.size
    starts = np.flatnonzero(block[1:] != block[:-1]) + 1
    starts = np.concatenate(([0], starts)) if n else starts
    ends = np.append(starts[1:], n) if n else starts
    run_block = block[starts]
    slices = len(starts) * _ROWS_PER_RUN_FOR_SLICES <= n
    out: dict[str, Counts] = {}
    for i, (k, m) in enumerate(zip(counts, masks, strict=True)):
        if m is None:
            continue
        col = sel.get_column(f"c{i}")
        if not n:
            per_run = np.zeros(0, dtype=np.int64)
        elif slices:
            per_run = np.array(
                [col.slice(a, e - a).sum() for a, e in zip(starts, ends, strict=True)],
                dtype=np.int64,
            )
        else:
            per_run = np.add.reduceat(col.to_numpy(), starts, dtype=np.int64)
        arr = np.zeros(blocks.count, dtype=np.int64)
        np.add.at(arr, run_block, per_run)
        out[k] = Counts(arr)
    plain = {k: e for (k, e), m in zip(counts.items(), masks, strict=True) if m is None}
    if plain:
        g = lf.group_by(blocks.column).agg([e.alias(f"p{i}") for i, e in enumerate(plain.values())])
        g = g.collect()
        at = g.get_column(blocks.column).cast(pl.Int64).to_numpy()
        for i, k in enumerate(plain):
            arr = np.zeros(blocks.count, dtype=np.int64)
            arr[at] = g.get_column(f"p{i}").cast(pl.Int64).to_numpy()
            out[k] = Counts(arr)
    return out
