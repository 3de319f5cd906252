"""Measured truth intervals (analysis/truth.py; docs/METHODOLOGY.md, "Measured truth"): known
answers by hand, containment of the true time for clocks within the drift bound over asymmetric
paths, detection of a step, and judged counts that bracket the exact ones."""

from __future__ import annotations

import random

import numpy as np
import polars as pl
import pytest

from skewlab.analysis.stats_util import Blocks, collect_row
from skewlab.analysis.truth import (
    SLACK_NS,
    Exchanges,
    _judge,
    grow,
    inconsistent_pairs,
    judged,
    ppb_of,
    truth_intervals,
)

MS = 1_000_000
S = 1_000_000_000


def _ex(rows: list[tuple[int, int, int, int]]) -> Exchanges:
    a = np.array(rows, dtype=np.int64)
    return Exchanges(a[:, 0], a[:, 1], a[:, 2], a[:, 3])


def test_one_exchange_by_hand() -> None:
    # node clock 5 ms behind the reference; request 30 µs out, 10 µs server hold, 70 µs back
    off = 5 * MS
    t1 = 10 * S
    t2 = t1 + off + 30_000
    t3 = t2 + 10_000
    t4 = t3 - off + 70_000
    ex = _ex([(t1, t2, t3, t4)])
    ppb = ppb_of(500.0)  # 500 ppm
    assert ppb == 500_000
    # at T1 itself: D = T4 − T1 = 110 µs → growth ⌈110 µs · 500 ppm⌉ = 55 ns; hold: 5 ns
    lo, hi, ok, near = truth_intervals(np.array([t1]), ex, ppb)
    assert ok.tolist() == [True]
    assert lo[0] == t1 + (t3 - t4) - 5 - 55 - SLACK_NS
    assert hi[0] == t1 + (t2 - t1) + 55 + SLACK_NS
    assert near[0] == 110_000
    # true time at T1 is t1 + off: inside, and the width is δ + growth (δ = 100 µs)
    assert lo[0] <= t1 + off <= hi[0]
    assert hi[0] - lo[0] == 100_000 + 5 + 2 * 55 + 2 * SLACK_NS
    # 1 s after T1 (D = 1 s): the bound has grown by 500 ppm × 1 s on each side
    lo2, hi2, _, _ = truth_intervals(np.array([t1 + S]), ex, ppb)
    g = int(grow(np.array([S]), ppb)[0])
    assert g == 500_000
    assert hi2[0] - lo2[0] == 100_000 + 5 + 2 * g + 2 * SLACK_NS


def test_grow_rounds_up_without_overflow() -> None:
    d = np.array([0, 1, 999_999_999, 10**9, 10**15, 9 * 10**15], dtype=np.int64)
    got = grow(d, 500_000)
    want = [-(-int(x) * 500_000 // 10**9) for x in d]
    assert got.tolist() == want


def _simulate(
    rng: random.Random, drift_ppm: float, n: int = 200, rate_hz: float = 10.0
) -> tuple[Exchanges, np.ndarray, np.ndarray]:
    """Exchanges of a node whose clock runs at 1 + drift against the reference, over a path
    with random asymmetric delays; and receipts at random true instants with their local
    readings. local(t) = offset + t·(1 + drift)."""
    offset = rng.randint(-50 * MS, 50 * MS)
    f = drift_ppm * 1e-6

    def local(t: int) -> int:
        return offset + t + round(t * f)

    rows = []
    t = S
    for _ in range(n):
        out = rng.randint(5_000, 3 * MS)  # very asymmetric: 5 µs .. 3 ms each way
        back = rng.randint(5_000, 3 * MS)
        hold = rng.randint(1_000, 50_000)
        s2 = t + out
        s3 = s2 + hold
        r4 = s3 + back
        rows.append((local(t), s2, s3, local(r4)))
        t += round(S / rate_hz) + rng.randint(-20 * MS, 20 * MS)
    truth = np.array([rng.randint(S // 2, t + S // 2) for _ in range(2000)], dtype=np.int64)
    loc = np.array([local(int(x)) for x in truth], dtype=np.int64)
    return _ex(rows), truth, loc


@pytest.mark.parametrize("drift_ppm", [0.0, 40.0, -25.0, 300.0, -499.0])
def test_true_time_is_always_inside(drift_ppm: float) -> None:
    rng = random.Random(int(drift_ppm * 10) + 7)
    ex, truth, loc = _simulate(rng, drift_ppm)
    lo, hi, ok, _ = truth_intervals(loc, ex, ppb_of(500.0))
    assert ok.all()
    assert ((lo <= truth) & (truth <= hi)).all()
    assert inconsistent_pairs(ex, ppb_of(500.0)) == 0


def test_a_step_is_detected_not_hidden() -> None:
    rng = random.Random(3)
    ex, _, _ = _simulate(rng, 0.0)
    k = ex.n // 2
    step = 20 * MS  # the node's clock jumps ahead by 20 ms between exchanges k−1 and k
    t1, t4 = ex.t1.copy(), ex.t4.copy()
    t1[k:] += step
    t4[k:] += step
    stepped = Exchanges(t1, ex.t2, ex.t3, t4)
    assert inconsistent_pairs(stepped, ppb_of(500.0)) >= 1
    # a receipt right at the step, whose bounds come from both sides, gets no interval
    mid = np.array([(t4[k - 1] + t1[k]) // 2], dtype=np.int64)
    _, _, ok, _ = truth_intervals(mid, stepped, ppb_of(500.0))
    assert not ok[0]


def test_no_exchanges_no_interval() -> None:
    _, _, ok, _ = truth_intervals(np.array([1, 2, 3]), None, 500_000)
    assert not ok.any()


def test_judged_counts_bracket_the_exact_count() -> None:
    """A window claim on random intervals containing the truth: certainly wrong ≤ exact wrong
    ≤ possibly wrong, and rates carry block intervals."""
    rng = np.random.default_rng(5)
    n = 5000
    truth = rng.integers(0, 10 * S, n)
    lo = truth - rng.integers(0, 200_000, n)
    hi = truth + rng.integers(0, 200_000, n)
    est = truth + rng.integers(-3 * MS, 3 * MS, n)
    size = 50 * MS
    df = pl.DataFrame({"truth": truth, "lo": lo, "hi": hi, "est": est,
                       "block": (truth // S).astype(np.int64)})  # fmt: skip
    w = lambda c: pl.col(c) // size  # noqa: E731
    c = w("est")
    exprs = _judge("win", pl.col("est").is_not_null(), (w("lo") == w("hi")) & (c == w("lo")),
                   (c < w("lo")) | (c > w("hi")), c != w("truth"))  # fmt: skip
    raw = collect_row(df, exprs, Blocks("block", 10))
    j = judged(raw["win"], exact=True)
    assert j["claims"] == n
    assert j["certainly_wrong"] <= j["exact_wrong"] <= j["possibly_wrong"]
    assert 0 < j["certainly_wrong"] < j["possibly_wrong"]
    assert j["certainly_right"] + j["certainly_wrong"] + j["undecided"] == n
    r = j["possibly_wrong_rate"]
    assert r is not None and r["method"] == "block" and r["blocks"] == 10
    # by brute force
    exact = int((est // size != truth // size).sum())
    assert j["exact_wrong"] == exact
