"""The rates' 95% intervals respect how dependent their decisions are (docs/METHODOLOGY.md,
"Statistics"): Monte Carlo coverage on synthetic autocorrelated decision series with a known
true rate, where Wilson's interval (independent trials) falls well short; the interval never
excludes its own estimate; counts keep their split over time blocks through arithmetic."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skewlab.analysis import stats_util
from skewlab.analysis.stats_util import (
    Z95,
    Counts,
    block_interval,
    plain,
    rate,
    t975,
    wilson,
    wilson_eff,
)

TRIALS = 300


def _shared_error_series(
    rng: np.random.Generator, trials: int, blocks: int, per: int, share: float, rho: float
) -> tuple[np.ndarray, float]:
    """Decisions grouped in blocks (NTP intervals) of ``per``: decision i of block b is wrong
    when share·U_b + √(1 − share²)·V_i > c, U an AR(1) over blocks (correlation rho, stationary
    N(0, 1)), V independent N(0, 1); so every decision is N(0, 1) and the true rate is
    1 − Φ(c) = 0.1 exactly. Returns per-block wrong counts (trials × blocks) and the rate."""
    c = 1.2815515655446004  # Φ⁻¹(0.9)
    u = np.empty((trials, blocks))
    u[:, 0] = rng.standard_normal(trials)
    for b in range(1, blocks):
        u[:, b] = rho * u[:, b - 1] + math.sqrt(1 - rho * rho) * rng.standard_normal(trials)
    z = share * u[:, :, None] + math.sqrt(1 - share * share) * rng.standard_normal(
        (trials, blocks, per)
    )
    return (z > c).sum(axis=2), 0.1


def _runs_series(
    rng: np.random.Generator, trials: int, blocks: int, per: int, p: float, run: float
) -> tuple[np.ndarray, float]:
    """Misses in runs: a two-state Markov chain over the decisions, stationary miss rate p,
    mean run of misses ``run`` decisions (started from its stationary law, so the true rate is
    p exactly). Returns per-block miss counts (trials × blocks) and p."""
    p_bg = 1 / run
    p_gb = p * p_bg / (1 - p)
    n = blocks * per
    u = rng.random((trials, n))
    x = np.empty((trials, n), dtype=bool)
    x[:, 0] = rng.random(trials) < p
    for i in range(1, n):
        x[:, i] = np.where(x[:, i - 1], u[:, i] >= p_bg, u[:, i] < p_gb)
    return x.reshape(trials, blocks, per).sum(axis=2), p


def _coverage(k: np.ndarray, per: int, truth: float) -> tuple[float, float]:
    """Share of trials whose block interval, and whose Wilson interval, contains the truth."""
    n_b = np.full(k.shape[1], per)
    hit_block = hit_wilson = 0
    for row in k:
        bi = block_interval(row, n_b)
        assert bi is not None
        hit_block += bi.lo <= truth <= bi.hi
        lo, hi = wilson(int(row.sum()), int(n_b.sum()))  # type: ignore[misc]
        hit_wilson += lo <= truth <= hi
    return hit_block / len(k), hit_wilson / len(k)


def test_coverage_when_receipts_share_their_ntp_intervals_error() -> None:
    """200 NTP intervals of 50 decisions; within an interval the decisions share most of their
    error (share 0.9), and the error carries over to the next interval (rho 0.5)."""
    k, truth = _shared_error_series(np.random.default_rng(17), TRIALS, 200, 50, 0.9, 0.5)
    cov, cov_wilson = _coverage(k, 50, truth)
    assert cov >= 0.93, cov
    assert cov_wilson < 0.5, cov_wilson


def test_coverage_when_misses_come_in_runs() -> None:
    """Misses in runs of 25 decisions on average (half an NTP interval), rate 0.2."""
    k, truth = _runs_series(np.random.default_rng(18), TRIALS, 100, 50, 0.2, 25.0)
    cov, cov_wilson = _coverage(k, 50, truth)
    assert cov >= 0.93, cov
    assert cov_wilson < 0.6, cov_wilson


def test_independent_decisions_are_not_penalised_much() -> None:
    """Independent decisions: the block interval still covers, and is at most ~1.6× as wide as
    Wilson's (it cannot know they are independent)."""
    rng = np.random.default_rng(19)
    k = (rng.random((TRIALS, 100, 50)) < 0.1).sum(axis=2)
    cov, cov_wilson = _coverage(k, 50, 0.1)
    assert cov >= 0.95 and cov_wilson >= 0.93
    bi = block_interval(k[0], np.full(100, 50))
    assert bi is not None
    lo, hi = wilson(int(k[0].sum()), 5000)  # type: ignore[misc]
    assert hi - lo <= bi.hi - bi.lo <= 1.6 * (hi - lo)


def test_no_failure_counts_one_trial_per_block() -> None:
    """40,000 of 40,000 covered over 700 NTP intervals: the interval is Wilson's for 700
    trials, not for 40,000 (the issue's example)."""
    n_b = np.full(700, 40_000 // 700)
    n_b[: 40_000 - n_b.sum()] += 1
    bi = block_interval(n_b, n_b)
    assert bi is not None and bi.hi == 1.0 and bi.n_eff == 700 and bi.blocks == 700
    z2 = Z95**2
    assert bi.lo == pytest.approx(1 - z2 / (700 + z2))  # Wilson's k = n bound, n = 700
    assert bi.lo < wilson(40_000, 40_000)[0]  # type: ignore[index]


def test_cluster_score_interval_by_hand() -> None:
    """Two blocks (below MIN_BLOCKS: only the base length) of (k, n) = (1, 4) and (3, 4): the
    interval is the set of p0 with (K − p0·N)² ≤ t²·B/(B−1)·Σ(k_b − p0·n_b)², B = 2, t = 12.7062,
    which is all of [0, 1] (too few blocks to bound anything), hulled with Wilson's."""
    bi = block_interval(np.array([1, 3]), np.array([4, 4]))
    assert bi is not None and (bi.lo, bi.hi) == (0.0, 1.0)
    # 10 blocks of 10 decisions, k_b = 0,1,...,9 (K = 45, N = 100): solve the quadratic here
    k, n = np.arange(10), np.full(10, 10)
    t = t975(9)
    c = t * t * 10 / 9
    a2 = 100**2 - c * 10 * 100
    a1 = -2 * (45 * 100 - c * float((k * n).sum()))
    a0 = 45**2 - c * float((k * k).sum())
    r = math.sqrt(a1 * a1 - 4 * a2 * a0)
    lo, hi = (-a1 - r) / (2 * a2), (-a1 + r) / (2 * a2)
    bi = block_interval(k, n)
    assert bi is not None
    assert (bi.lo, bi.hi) == (pytest.approx(lo), pytest.approx(hi))
    var = float(((k - 0.45 * n) ** 2).sum()) * 10 / 9 / 100**2
    assert bi.n_eff == pytest.approx(0.45 * 0.55 / var) and bi.blocks == 10


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 60), st.integers(0, 60)).map(lambda x: (min(x), max(x))),
        min_size=1,
        max_size=40,
    )
)
def test_interval_never_excludes_its_estimate(cells: list[tuple[int, int]]) -> None:
    k = np.array([c[0] for c in cells])
    n = np.array([c[1] for c in cells])
    bi = block_interval(k, n)
    if n.sum() == 0:
        assert bi is None
        return
    assert bi is not None
    p = k.sum() / n.sum()
    assert 0.0 <= bi.lo <= p <= bi.hi <= 1.0
    assert 1.0 <= bi.n_eff <= n.sum()
    lo, hi = wilson(int(k.sum()), int(n.sum()))  # type: ignore[misc]
    assert bi.lo <= lo + 1e-12 and bi.hi >= hi - 1e-12  # never narrower than Wilson's


def test_t_quantiles() -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    for df in (1, 2, 5, 9, 30, 31, 50, 200, 10_000):
        assert t975(df) == pytest.approx(float(scipy_stats.t.ppf(0.975, df)), abs=2e-4)


def test_wilson_eff_matches_wilson() -> None:
    for k, n in ((0, 7), (3, 7), (7, 7), (120, 4000)):
        assert wilson_eff(k / n, n) == pytest.approx(wilson(k, n))


def test_counts_keep_their_blocks() -> None:
    a, b = Counts(np.array([1, 2, 3])), Counts(np.array([0, 1, 1]))
    d = a - b
    assert isinstance(d, Counts) and d == 4 and d.blocks.tolist() == [1, 1, 2]
    s = sum([a, b])  # starts from the int 0
    assert isinstance(s, Counts) and s.blocks.tolist() == [1, 3, 4]
    assert not isinstance(a + 1, Counts) and a + 1 == 7
    r = rate(b, a)
    assert r is not None and r["method"] == "block" and r["blocks"] == 3
    assert r["k"] == 2 and r["n"] == 6 and r["rate"] == pytest.approx(1 / 3)
    doc = plain({"x": [r]})
    assert type(doc["x"][0]["k"]) is int
    w = rate(2, 6)
    assert w is not None and w["method"] == "wilson" and w["n_eff"] == 6.0


def test_sparse_send_times_number_only_the_blocks_they_hold() -> None:
    """Sends days apart (a clock far off, an imported trace): blocks holding sends are numbered
    in time order instead of allocating every empty block between them."""
    from types import SimpleNamespace

    import polars as pl

    from skewlab.analysis.run import BLOCK, block_grid

    traces = SimpleNamespace(spec={"ntp": {"poll_s": 1.0}}, workers=[])
    sends = pl.DataFrame({"truth_ns": [0, 10**17, 2 * 10**17], "local_ns": [0, 0, 0]})
    out, blocks, iv = block_grid(traces, sends, True)  # type: ignore[arg-type]
    assert blocks.count == 3 and out.get_column(BLOCK).to_list() == [0, 1, 2]
    assert iv["block_ns"] == 1_000_000_000 and "poll_s" in iv["block_from"]


@settings(max_examples=60, deadline=None)
@given(
    runs=st.lists(st.tuples(st.integers(0, 6), st.integers(1, 40)), max_size=30),
    seed=st.integers(0, 2**32 - 1),
    rows_per_run=st.sampled_from([1, 10**9]),
)
def test_block_counts_equal_a_group_by(
    runs: list[tuple[int, int]], seed: int, rows_per_run: int
) -> None:
    """collect_row's per-block counts (masks summed over runs of one block, by slices or by a
    numpy segment sum, whichever ``_ROWS_PER_RUN_FOR_SLICES`` picks) equal a plain group-by,
    for blocks in any order (runs of a block may repeat) and for an empty frame."""
    block = np.repeat([b for b, _ in runs], [k for _, k in runs]).astype(np.int64)
    rng = np.random.default_rng(seed)
    df = pl.DataFrame({"block": block, "x": rng.integers(-5, 5, block.size)})
    df = df.with_columns(pl.when(pl.col("x") == 0).then(None).otherwise(pl.col("x")).alias("x"))
    exprs = {"n": stats_util.rows(), "pos": stats_util.count(pl.col("x") > 0),
             "odd": stats_util.count(pl.col("x") % 2 == 1)}  # fmt: skip
    saved = stats_util._ROWS_PER_RUN_FOR_SLICES
    stats_util._ROWS_PER_RUN_FOR_SLICES = rows_per_run
    try:
        raw = stats_util.collect_row(df, exprs, stats_util.Blocks("block", 7))
    finally:
        stats_util._ROWS_PER_RUN_FOR_SLICES = saved
    want = df.group_by("block").agg(
        pl.len().alias("n"), (pl.col("x") > 0).fill_null(False).sum().alias("pos"),
        (pl.col("x") % 2 == 1).fill_null(False).sum().alias("odd"),
    )  # fmt: skip
    for k in exprs:
        ref = np.zeros(7, dtype=np.int64)
        ref[want.get_column("block").to_numpy()] = want.get_column(k).to_numpy()
        assert isinstance(raw[k], Counts)
        assert raw[k].blocks.tolist() == ref.tolist(), k
