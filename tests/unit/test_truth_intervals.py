"""Measured truth intervals (analysis/truth.py; docs/METHODOLOGY.md, "Measured truth"): known
answers by hand, containment of the true time for clocks within the drift bound over asymmetric
paths, detection of a step, and judged counts that bracket the exact ones."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from skewlab.analysis import analyze
from skewlab.analysis.stats_util import Blocks, collect_row
from skewlab.analysis.truth import (
    SLACK_NS,
    Exchanges,
    _judge,
    grow,
    inconsistent_pairs,
    judged,
    node_intervals,
    ppb_of,
    segments,
    truth_intervals,
)
from skewlab.trace import TRUTH_SCHEMA
from tests.unit.test_analysis_metrics import write_run

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


def _stepped(step: int) -> tuple[Exchanges, np.ndarray, np.ndarray]:
    """A node clock 1 ms ahead that steps by ``step`` at true 10.05 s, probed every 100 ms over
    a 40 µs + 40 µs path, with its step gap recorded; receipts every 1 ms from 9 s to 11 s."""
    rows, gaps = [], []
    step_at = 10 * S + 50 * MS

    def local(t: int) -> int:
        return t + MS + (step if t >= step_at else 0)

    def gap(t: int) -> int:
        return 5_000 + (step if t >= step_at else 0)

    for k in range(80, 121):
        t = k * 100 * MS
        rows.append((local(t), t + 40_000, t + 50_000, local(t + 90_000)))
        gaps.append((gap(t), gap(t + 90_000), 500))
    a, g = np.array(rows, dtype=np.int64), np.array(gaps, dtype=np.int64)
    ex = Exchanges(a[:, 0], a[:, 1], a[:, 2], a[:, 3], g[:, 0], g[:, 1], g[:, 2])
    truth = np.arange(9 * S, 11 * S, MS, dtype=np.int64)
    return ex, truth, np.array([local(int(x)) for x in truth], dtype=np.int64)


@pytest.mark.parametrize("step", [90_000, -90_000, 5 * MS, -5 * MS])
def test_a_step_between_exchanges_never_gives_a_wrong_interval(step: int) -> None:
    """A step of the order of the intervals' width (90 µs against ±40 µs + the drift term)
    passes the drift check unseen — the exchanges on both sides still overlap, their
    intersection off by the step — but the step gap shows it: the node's
    exchanges split there, instants the step may lie on either side of get no interval, and
    every other interval holds the truth."""
    ex, truth, loc = _stepped(step)
    ppb = ppb_of(500.0)
    seg = segments(ex, ppb)
    assert len(seg.parts) == 2 and len(seg.zones) == 1 and seg.stepped == 0
    lo, hi, ok, _ = node_intervals(loc, seg, ppb)
    assert ((lo <= truth) & (truth <= hi))[ok].all()
    assert 1800 <= ok.sum() < truth.size  # only the instants around the step are lost
    if abs(step) < MS:  # without the step gaps, the small step gives wrong intervals
        blind = Exchanges(ex.t1, ex.t2, ex.t3, ex.t4)
        lo2, hi2, ok2, _ = node_intervals(loc, segments(blind, ppb), ppb)
        assert not ((lo2 <= truth) & (truth <= hi2))[ok2].all()


def test_a_step_inside_an_exchange_drops_it() -> None:
    ex, _, _ = _stepped(5 * MS)
    assert ex.g1 is not None and ex.g4 is not None
    g4 = ex.g4.copy()
    g4[10] += 5 * MS  # the clock stepped between this exchange's T1 and T4
    seg = segments(Exchanges(ex.t1, ex.t2, ex.t3, ex.t4, ex.g1, g4, ex.unc), ppb_of(500.0))
    assert seg.stepped == 1 and sum(p.n for p in seg.parts) == ex.n - 1


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


# -- a known answer through the whole analysis -------------------------------------------------
# Coordinator "co", workers A and B; every node's clock reads true time (local = truth), and each
# node's truth trace has an exchange every 500 ms whose path takes h each way with no server
# hold (T2 = T1 + h = T3, T4 = T1 + 2h): its truth interval at L is [L − h, L + h] (plus ρ·D
# and 4 ns, a few ns here: ρ = 0.001 ppm). h: co 1 ms, A 0.1 ms, B 2 ms. Times in ms.
H_MS = {"co": 1.0, "A": 0.1, "B": 2.0}
KAT_SENDS = [
    {"event_id": i + 1, "truth": t, "local": t, "system": t, "truetime": (t - 1, t, t + 1)}
    for i, t in enumerate([1000, 2000, 3000, 4000])
]  # fmt: skip
KAT_RECEIPTS = {
    # truth, system (point), truetime (earliest, estimate, latest); the categories below
    "A": [(1001, 1001, (1000, 1001, 1002)),   # after send: undecided ([1000.9, 1001.1] vs
          #   send [999, 1001]); cover: certain; window 10: right
          (2002, 2002, (2002, 2003, 2004)),   # after: certain; cover: undecided (e 2002 >
          #   lo 2001.9, hi 2002.1 < l); window: right
          (3010, 3099, (3011, 3012, 3013)),   # after: certain; cover: certainly missed;
          #   window 30: right (3099 is still window 30)
          (4020, 4100, (4019, 4020, 4021))],  # after: certain; cover: certain; window 41 ≠ 40:
          #   certainly wrong
    "B": [(1005, 1005, (1004, 1005, 1006)),   # after: certain ([1003, 1007]); cover: undecided;
          #   window: right
          (2003, 1999, (2010, 2011, 2012)),   # after: undecided ([2001, 2005] vs [1999, 2001]);
          #   cover: certainly missed; window 19 ≠ 20: certainly wrong
          (3010, 3010, (3000, 3010, 3020)),   # after: certain; cover: certain; window: right
          (4099, 4099, (4098, 4099, 4100))],  # after: certain; cover: undecided; window:
          #   [4097, 4101] straddles 41: undecided (exact: right)
}  # fmt: skip


def _write_truth(root: Path, node: str, h_ms: float) -> None:
    h = round(h_ms * MS)
    t1 = [k * 500 * MS for k in range(11)]
    cols = {"t1_ns": t1, "t2_ns": [t + h for t in t1], "t3_ns": [t + h for t in t1],
            "t4_ns": [t + 2 * h for t in t1], "truth_t1_ns": t1,
            "truth_t4_ns": [t + 2 * h for t in t1], "step_gap_t1_ns": [7] * len(t1),
            "step_gap_t4_ns": [7] * len(t1), "step_gap_unc_ns": [1] * len(t1)}  # fmt: skip
    pq.write_table(pa.Table.from_pydict(cols, schema=TRUTH_SCHEMA),
                   root / "traces" / node / "truth-000000.parquet")  # fmt: skip


@pytest.fixture(scope="module")
def kat(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("truth-kat")
    receipts = {
        w: [{"event_id": i + 1, "truth": t, "local": t, "system": s, "truetime": tt}
            for i, (t, s, tt) in enumerate(rows)]
        for w, rows in KAT_RECEIPTS.items()
    }  # fmt: skip
    # A's truetime re-evaluated at T+50 ms (B has none): e1 (1000, 1002) covers [1000.9, 1001.1];
    # e2 (2002, 2003) undecided against [2001.9, 2002.1] (exactly covered); e3 (3000, 3005)
    # misses [3009.9, 3010.1]; e4 not re-evaluated. Each is confident in 100 ms windows, right.
    cw = {"A": {50: [{"event_id": 1, "truetime": (1000, 1002)},
                     {"event_id": 2, "truetime": (2002, 2003)},
                     {"event_id": 3, "truetime": (3000, 3005)},
                     {"event_id": 4, "truetime": None}]}}  # fmt: skip
    res = write_run(root, KAT_SENDS, receipts, window_sizes_ms=[100], cw=cw)
    spec = json.loads(res.spec_path.read_text())
    spec["truth"] = {"max_drift_ppm": 0.001}
    res.spec_path.write_text(json.dumps(spec))
    for node, h in H_MS.items():
        _write_truth(root, node, h)
    return analyze(res, make_figures=False)  # type: ignore[return-value]


def _counts(j: dict[str, Any]) -> tuple[int, int, int, int, int | None]:
    return (j["claims"], j["certainly_right"], j["certainly_wrong"], j["undecided"],
            j["exact_wrong"])  # fmt: skip


def test_known_answer_through_the_analysis(kat: dict[str, Any]) -> None:
    mt = kat["measured_truth"]
    assert mt["exact_truth"] is True and mt["max_drift_ppm"] == 0.001
    # every receipt after its send: 8 claims, 2 undecided (A's event 1, B's event 2)
    assert _counts(mt["causality_truth"]) == (8, 6, 0, 2, 0)
    tt, sy = mt["sources"]["truetime"], mt["sources"]["system"]
    # coverage: certain A1 A4 B3; missed A3 B2 (exactly missed too); undecided A2 B1 B4
    assert _counts(tt["coverage"]) == (8, 3, 2, 3, 2)
    # 100 ms windows by the system estimate: wrong A4 B2; undecided B4 (exactly right)
    assert _counts(sy["windows"]["100"]["point"]) == (8, 5, 2, 1, 2)
    # ordering A|B by the system estimate: e1 A first, right; e2 claims B first, undecided
    # ([2001.9, 2002.1] vs [2001, 2005]; exactly wrong: 2002 < 2003), e3 undecided (a true tie:
    # not wrong); e4 claims B first, A certainly first: wrong
    assert _counts(sy["ordering"]["point"]) == (4, 1, 1, 2, 2)
    # B's event 2 is stamped 1999 against a send stamped 2000: a claimed violation; the truth
    # intervals ([2001, 2005] vs [1999, 2001]) touch, so it stays undecided (exactly: wrong)
    assert _counts(sy["causality"]) == (1, 0, 0, 1, 1)
    assert _counts(tt["causality_bounded"]) == (0, 0, 0, 0, 0)
    # MAE bounds of the system clock (ms): at least (88.9 + 79.9 + 2)/8, at most
    # (0.1 + 0.1 + 89.1 + 80.1 + 2 + 6 + 2 + 2)/8, exactly (89 + 80 + 4)/8
    mae = sy["mae"]
    assert mae["n"] == 8
    assert mae["lo_ns"] == pytest.approx(170.8 / 8 * MS, abs=10)
    assert mae["hi_ns"] == pytest.approx(181.4 / 8 * MS, abs=10)
    assert mae["exact_ns"] == 173 / 8 * MS
    # per node: half-width h (+ a few ns), every interval holds the exact truth
    for node, h in H_MS.items():
        n = mt["nodes"][node]
        assert n["exchanges"] == 11 and n["no_interval"] == 0
        assert n["half_width_ns"]["p50_ns"] == pytest.approx(h * MS, abs=10)
        assert (n["exact_coverage"]["k"], n["exact_coverage"]["n"]) == (4, 4)
        assert n["decided_by"].startswith("the exchanges' round trip")
    # do A's and B's true receipt times share a 100 ms window? e1-e3 certainly (both intervals
    # in window 10, 20, 30); e4: A in 40, B [4097, 4101] in 40 or 41: undecided (exactly: yes)
    assert _counts(mt["truth_agreement"]["100"]) == (4, 3, 0, 1, 0)
    # commit-wait re-evaluations (A's only), and none for the point source
    cw = tt["commit_wait"]["50"]
    assert _counts(cw["coverage"]) == (3, 1, 1, 1, 1)
    assert _counts(cw["windows"]["100"]) == (3, 3, 0, 0, 0)
    assert sy["commit_wait"] is None
    assert kat["workers"]["A"]["sources"]["truetime"]["commit_wait"]["reevaluated"]["50"][
        "coverage"]["k"] == 2  # fmt: skip
    # rates: k/n with block intervals (1 s blocks: no NTP traces, no ntp.poll_s)
    r = tt["coverage"]["possibly_wrong_rate"]
    assert (r["k"], r["n"], r["method"]) == (5, 8, "block")


def test_every_measured_truth_rate_is_defined(kat: dict[str, Any]) -> None:
    """stats.json states numerator and denominator of every measured-truth rate."""
    defs = kat["rate_definitions"]

    def walk(tree: Any, key: str) -> None:
        if isinstance(tree, dict):
            if "ci95" in tree and "k" in tree:
                assert f"measured_truth.{key}" in defs, key
                return
            for k, v in tree.items():
                walk(v, k)

    walk(kat["measured_truth"], "")
