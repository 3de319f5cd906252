"""Known-answer tests of the analysis: small hand-built traces, every count computed by hand.

Times below are written in milliseconds and converted to integer ns when the trace is written.
The scenario (coordinator "co", three workers A, B, C; sources "system" (point) and "truetime"
(bounded, [earliest, latest])):

- 4 events, sent at true 1000, 2000, 3000, 4000 ms. A receives all; B misses event 3; C misses 4.
- The comments next to each reading say which category it falls in and why.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from skewlab.analysis import analyze
from skewlab.analysis.load import LEGACY_BOUNDED, AnalysisSettings
from skewlab.analysis.metrics import window_start
from skewlab.analysis.stats_util import Z95, nearest_rank, rate, wilson
from skewlab.store import ResultsDir
from skewlab.trace import (
    commit_wait_columns,
    commit_wait_schema,
    receipt_schema,
    send_schema,
    send_source_columns,
    source_columns,
)

MS = 1_000_000
SOURCES = ["system", "truetime"]

Reading = int | tuple[int, int, int] | None  # point ms | (earliest, estimate, latest) ms | none


def _vals(v: Reading, status: int | None) -> tuple[Any, Any, Any, int]:
    if v is None:
        return (None, None, None, 0)
    if isinstance(v, int):
        return (v * MS, v * MS, v * MS, 2 if status is None else status)
    lo, est, hi = v
    return (est * MS, lo * MS, hi * MS, 2 if status is None else status)


def write_node(
    root: Path,
    node: str,
    rows: list[dict[str, Any]],
    sources: list[str],
    send: bool,
    extra: dict[str, pa.DataType] | None = None,
    send_rows: dict[int, dict[str, Any]] | None = None,
) -> None:
    """Write one node's trace (one Parquet part) in the real schema; extra = additional columns."""
    schema = send_schema(sources) if send else receipt_schema(sources)
    for name, typ in (extra or {}).items():
        schema = schema.append(pa.field(name, typ))
    cols: dict[str, list[Any]] = {n: [] for n in schema.names}
    for r in rows:
        filled = {
            "seq": r["event_id"],
            "local_ns": (r.get("local") or 0) * MS,  # truthless sends: their true time
            "send_local_ns": 0,
            "scheduled_delay_ns": 0,
            "pacing_error_ns": 0,
            "workers_sent": 3,
            "workers_failed": 0,
        }
        filled["event_id"] = r["event_id"]
        truth = r.get("truth")
        filled["truth_ns"] = None if truth is None else truth * MS
        for s in sources:
            vals = _vals(r.get(s), r.get(f"{s}_status"))
            filled.update(zip(source_columns(s), vals, strict=True))
        for name in extra or {}:
            filled[name] = r.get(name)
        if not send:  # the coordinator's send readings, as carried on the wire
            sent = (send_rows or {}).get(r["event_id"], {})
            for s in sources:
                st, e, lo, hi = send_source_columns(s)
                e_v, lo_v, hi_v, st_v = _vals(sent.get(s), None)
                filled.update({st: st_v, e: e_v, lo: lo_v, hi: hi_v})
        for n in schema.names:
            cols[n].append(filled[n])
    d = root / "traces" / node
    d.mkdir(parents=True, exist_ok=True)
    if any(v is None for v in cols["truth_ns"]):  # truth-less traces: nullable truth column
        i = schema.get_field_index("truth_ns")
        schema = schema.set(i, pa.field("truth_ns", pa.int64(), nullable=True))
    pq.write_table(pa.Table.from_pydict(cols, schema=schema), d / "events-000000.parquet")


def write_run(
    root: Path,
    sends: list[dict[str, Any]],
    receipts: dict[str, list[dict[str, Any]]],
    sources: list[str] = SOURCES,
    truth: bool = True,
    extra: dict[str, dict[str, pa.DataType]] | None = None,
    window_sizes_ms: list[int] | None = None,
    window_offset_ms: int = 0,
    cw: dict[str, dict[int, list[dict[str, Any]]]] | None = None,
    window_phase: str = "fixed",  # known answers are worked out on one window grid
) -> ResultsDir:
    root.mkdir(parents=True, exist_ok=True)
    nodes = [{"name": "co", "role": "coordinator"}] + [
        {"name": w, "role": "worker"} for w in receipts
    ]
    spec: dict[str, Any] = {"name": "kat", "seed": 3, "nodes": nodes, "sources": sources}
    spec["analysis"] = {"window_phase": window_phase}
    if window_sizes_ms:
        spec["analysis"] |= {
            "window_sizes_ms": window_sizes_ms,
            "window_offset_ms": window_offset_ms,
        }
    (root / "spec.json").write_text(json.dumps(spec))
    (root / "metadata.json").write_text(json.dumps({"truth_available": truth}))
    if not truth:
        # the coordinator's clock keeps the events' time order: the intervals' time blocks
        sends = [{**r, "truth": None, "local": r.get("truth")} for r in sends]
        receipts = {w: [{**r, "truth": None} for r in rows] for w, rows in receipts.items()}
    write_node(root, "co", sends, sources, send=True)
    for w, rows in receipts.items():
        write_node(
            root,
            w,
            rows,
            sources,
            send=False,
            extra=(extra or {}).get(w),
            send_rows={r["event_id"]: r for r in sends},
        )
    for w, by_delta in (cw or {}).items():
        for d, rows in by_delta.items():
            write_cw(root, w, d, sources, rows)
    return ResultsDir(root)


def write_cw(
    root: Path, worker: str, delay_ms: int, sources: list[str], rows: list[dict[str, Any]]
) -> None:
    """One worker's commit-wait part at T+Δ, in the runtime's schema (trace.commit_wait_schema).

    rows: {"event_id", "<src>": (earliest, latest) ms | None, "<src>_status"}."""
    schema = commit_wait_schema(sources, delay_ms)
    cols: dict[str, list[Any]] = {n: [] for n in schema.names}
    for r in rows:
        cols["event_id"].append(r["event_id"])
        cols[f"cw{delay_ms}_age_ns"].append(delay_ms * MS)
        for s in sources:
            lo, hi, st = commit_wait_columns(s, delay_ms)
            v = r.get(s)
            cols[lo].append(None if v is None else v[0] * MS)
            cols[hi].append(None if v is None else v[1] * MS)
            cols[st].append(r.get(f"{s}_status", 2 if v is not None else -1))
    d = root / "traces" / worker
    pq.write_table(pa.Table.from_pydict(cols, schema=schema), d / f"cw{delay_ms}-000000.parquet")


# --- the scenario -----------------------------------------------------------------------------

SENDS = [
    # coordinator: system is 1 ms ahead; truetime ±2 ms around truth; event 4 has no truetime
    {"event_id": 1, "truth": 1000, "system": 1001, "truetime": (998, 1000, 1002)},
    {"event_id": 2, "truth": 2000, "system": 2001, "truetime": (1998, 2000, 2002)},
    {"event_id": 3, "truth": 3000, "system": 3001, "truetime": (2998, 3000, 3002)},
    {"event_id": 4, "truth": 4000, "system": 4001, "truetime": None},
]
RECEIPTS = {
    "A": [
        # system = truth − 5: every receipt stamped before its send (1000 < 1001 ...)
        # truetime e1: send latest 1002 < receipt earliest 1003 → provably after; covers 1005
        {"event_id": 1, "truth": 1005, "system": 1000, "truetime": (1003, 1005, 1007)},
        # e2: send latest 2002 == receipt earliest 2002 → touching: ambiguous; covers 2005
        {"event_id": 2, "truth": 2005, "system": 2000, "truetime": (2002, 2004, 2006)},
        # e3: receipt latest 2997 < send earliest 2998 → violating; truth 3005 above latest by 8
        {"event_id": 3, "truth": 3005, "system": 3000, "truetime": (2990, 2995, 2997)},
        # e4: coordinator has no truetime → undecidable; truth 4005 below earliest by 1;
        # FREE_RUNNING status
        {
            "event_id": 4,
            "truth": 4005,
            "system": 4000,
            "truetime": (4006, 4008, 4010),
            "truetime_status": 1,
        },
    ],
    "B": [
        {"event_id": 1, "truth": 1005, "system": 1010, "truetime": (1004, 1005, 1006)},
        {"event_id": 2, "truth": 2007, "system": 2003, "truetime": (2006, 2007, 2009)},
        {"event_id": 4, "truth": 4003, "system": None, "truetime": (4001, 4003, 4004)},
    ],
    "C": [
        {"event_id": 1, "truth": 1009, "system": 1009, "truetime": (1008, 1009, 1010)},
        {"event_id": 2, "truth": 2008, "system": 2008, "truetime": (2007, 2008, 2009)},
        # system 3001 == the coordinator's 3001: a tie, not a violation
        {"event_id": 3, "truth": 3004, "system": 3001, "truetime": (3003, 3004, 3005)},
    ],
}
# A's receipts re-evaluated at T+5 ms (retrospective intervals of the receipt instant);
# B's event 1 has no refinement (status −1, no values)
CW = {
    "A": {
        5: [
            {"event_id": 1, "truetime": (1004, 1006)},  # width 2 < 4: narrower; covers 1005
            {"event_id": 2, "truetime": (2003, 2006)},  # width 3 < 4; covers 2005
            {"event_id": 3, "truetime": (2996, 3006)},  # width 10 > 7; covers 3005; straddles 3000
            {"event_id": 4, "truetime": (4004, 4007)},  # width 3 < 4; [4006, 4010] straddled 4010:
        ]
    },  # now inside [4000, 4010): resolved
    "B": {5: [{"event_id": 1, "truetime": None, "truetime_status": -1}]},
}


@pytest.fixture(scope="module")
def stats(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("kat") / "run"
    res = write_run(root, SENDS, RECEIPTS, cw=CW, window_sizes_ms=[10, 1000])
    return analyze(res, make_figures=False)


@pytest.fixture(scope="module")
def stats_no_truth(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("kat_nt") / "run"
    res = write_run(root, SENDS, RECEIPTS, truth=False, cw=CW, window_sizes_ms=[10, 1000])
    return analyze(res, make_figures=False)


def _src(stats: dict[str, Any], w: str, s: str) -> dict[str, Any]:
    return stats["workers"][w]["sources"][s]


# --- statistics helpers -----------------------------------------------------------------------


def test_wilson_identities() -> None:
    n = 20
    lo, hi = wilson(0, n)  # type: ignore[misc]
    assert lo == 0.0
    assert hi == pytest.approx(Z95**2 / (n + Z95**2))  # closed form of the k = 0 upper bound
    lo2, hi2 = wilson(n, n)  # type: ignore[misc]
    assert hi2 == 1.0 and lo2 == pytest.approx(1 - hi)  # symmetry k ↔ n − k
    a, b = wilson(7, 30)  # type: ignore[misc]
    c, d = wilson(23, 30)  # type: ignore[misc]
    assert a == pytest.approx(1 - d) and b == pytest.approx(1 - c)
    assert a < 7 / 30 < b
    assert wilson(0, 0) is None
    with pytest.raises(ValueError):
        wilson(3, 2)
    r = rate(3, 4)
    assert r is not None and r["rate"] == 0.75 and r["ci95"] == list(wilson(3, 4))  # type: ignore[arg-type]
    assert rate(None, 4) is None
    assert rate(0, 0) == {
        "k": 0, "n": 0, "rate": None, "ci95": None, "method": "wilson", "n_eff": None,
        "blocks": None,
    }  # fmt: skip


def test_nearest_rank_percentiles() -> None:
    def q(values: list[int | None], num: int, den: int) -> Any:
        df = pl.DataFrame({"x": pl.Series(values, dtype=pl.Int64)})
        return df.select(nearest_rank(pl.col("x"), num, den)).item()

    vals = list(range(100, 0, -1))  # 100 .. 1, unsorted order
    assert q(vals, 99, 100) == 99  # rank ceil(0.99·100) = 99
    assert q(vals, 1, 2) == 50
    assert q([3, 1, 2], 1, 2) == 2  # rank ceil(1.5) = 2
    assert q([3, 1, 2], 99, 100) == 3
    assert q([5, None, 5, 1], 1, 2) == 5  # nulls ignored; sorted [1, 5, 5], rank 2
    assert q([None], 1, 2) is None
    assert q([], 99, 100) is None


def test_window_start_flink_formula() -> None:
    df = pl.DataFrame({"t": [0, 9, 10, 11, -1, -10, -11, 25]})
    got = df.select(window_start(pl.col("t"), 10, 0))["t"].to_list()
    assert got == [0, 0, 10, 10, -10, -10, -20, 20]  # [start, start + size), floor modulo
    got = df.select(window_start(pl.col("t"), 10, 3))["t"].to_list()
    assert got == [-7, 3, 3, 3, -7, -17, -17, 23]  # windows [3, 13), [−7, 3) ...


# --- per worker -------------------------------------------------------------------------------


def test_accounting(stats: dict[str, Any]) -> None:
    acc = {w: stats["workers"][w]["accounting"] for w in "ABC"}
    assert acc["A"] == {
        "sent": 4,
        "received": 4,
        "lost": 0,
        "unknown_events": 0,
        "duplicate_rows": 0,
    }
    assert (acc["B"]["received"], acc["B"]["lost"]) == (3, 1)
    assert (acc["C"]["received"], acc["C"]["lost"]) == (3, 1)


def test_error_vs_truth(stats: dict[str, Any]) -> None:
    e = _src(stats, "A", "system")["error_vs_truth"]
    assert e["n"] == 4 and e["mean_ns"] == -5 * MS and e["mae_ns"] == 5 * MS
    assert e["rmse_ns"] == pytest.approx(5 * MS) and e["max_abs_ns"] == 5 * MS
    # truetime at A: errors 0, −1, −10, +3 ms
    e = _src(stats, "A", "truetime")["error_vs_truth"]
    assert e["mean_ns"] == (0 - 1 - 10 + 3) / 4 * MS
    assert e["mae_ns"] == (0 + 1 + 10 + 3) / 4 * MS
    assert e["rmse_ns"] == pytest.approx(math.sqrt((0 + 1 + 100 + 9) / 4) * MS)
    assert e["p50_abs_ns"] == 1 * MS  # sorted |e| = [0, 1, 3, 10]; rank ceil(2) = 2
    assert e["p99_abs_ns"] == 10 * MS and e["max_abs_ns"] == 10 * MS
    # B's system has one unanswered reading (event 4)
    e = _src(stats, "B", "system")["error_vs_truth"]
    assert (e["n"], e["unanswered"]) == (2, 1)
    assert _src(stats, "B", "system")["readings"]["by_status"]["UNSYNCHRONIZED"] == 1
    # coordinator: system +1 ms; truetime unanswered once
    c = stats["coordinator"]["sources"]
    assert c["system"]["error_vs_truth"]["mean_ns"] == 1 * MS
    assert c["truetime"]["error_vs_truth"]["unanswered"] == 1


def test_bound_quality(stats: dict[str, Any]) -> None:
    bq = _src(stats, "A", "truetime")["bound_quality"]
    assert bq["coverage"]["k"] == 2 and bq["coverage"]["n"] == 4  # e1, e2 covered
    assert bq["below"] == 1 and bq["above"] == 1  # e4 (truth < earliest), e3 (truth > latest)
    m = bq["miss_ns"]
    assert (m["n"], m["min_ns"], m["max_ns"]) == (2, 1 * MS, 8 * MS)
    assert m["mean_ns"] == 4.5 * MS and m["p50_ns"] == 1 * MS and m["p99_ns"] == 8 * MS
    hw = bq["half_width_ns"]  # widths 4, 4, 7, 4 ms
    assert hw["mean_ns"] == (4 + 4 + 7 + 4) / 4 / 2 * MS
    assert hw["p50_ns"] == 2 * MS and hw["p99_ns"] == 3.5 * MS and hw["max_ns"] == 3.5 * MS
    by = bq["coverage_by_status"]
    assert (by["SYNCHRONIZED"]["k"], by["SYNCHRONIZED"]["n"]) == (2, 3)
    assert (by["FREE_RUNNING"]["k"], by["FREE_RUNNING"]["n"]) == (0, 1)
    assert _src(stats, "A", "system")["bound_quality"] is None  # point source
    assert stats["source_kinds"] == {"system": "point", "truetime": "bounded"}


def test_causality(stats: dict[str, Any]) -> None:
    c = _src(stats, "A", "system")["causality"]
    assert (c["events"], c["decided"], c["violations"], c["ties"]) == (4, 4, 4, 0)
    assert c["violation_rate"]["rate"] == 1.0 and c["truth_violations"] == 0
    c = _src(stats, "C", "system")["causality"]
    assert (c["decided"], c["violations"], c["ties"]) == (3, 0, 1)  # e3 tie is no violation
    c = _src(stats, "B", "system")["causality"]
    assert (c["events"], c["decided"], c["undecidable"]) == (3, 2, 1)
    # truetime at A, estimates: 1005>1000, 2004>2000, 2995<3000 (violation), e4 no send value
    c = _src(stats, "A", "truetime")["causality"]
    assert (c["decided"], c["violations"], c["undecidable"]) == (3, 1, 1)
    b = c["bounded"]
    assert (b["decided"], b["undecidable"]) == (3, 1)
    assert (b["provably_after"], b["ambiguous"], b["violating"]) == (1, 1, 1)


def test_windows_per_worker(stats: dict[str, Any]) -> None:
    w = _src(stats, "A", "system")["windows"]["10"]  # 1000, 2000, ... are window starts
    assert (w["decided"], w["correct"], w["wrong"]) == (4, 4, 0)
    w = _src(stats, "A", "truetime")["windows"]["10"]
    assert (w["decided"], w["correct"], w["wrong"]) == (4, 3, 1)  # estimate 2995 → [2990, 3000)
    b = w["bounded"]
    # [4006, 4010]: 4010 is the next window's start → straddles (ambiguous)
    assert (b["decided"], b["confident"], b["ambiguous"]) == (4, 3, 1)
    assert (b["confident_correct"], b["confident_wrong"]) == (2, 1)
    b = _src(stats, "A", "truetime")["windows"]["1000"]["bounded"]
    assert (b["confident"], b["ambiguous"], b["confident_correct"], b["confident_wrong"]) == (
        4,
        0,
        3,
        1,
    )
    w = _src(stats, "B", "system")["windows"]["10"]
    assert (w["decided"], w["correct"], w["wrong"]) == (2, 1, 1)  # 1010 lands in [1010, 1020)
    b = _src(stats, "C", "truetime")["windows"]["10"]["bounded"]
    assert (b["confident"], b["ambiguous"], b["confident_correct"]) == (2, 1, 2)


def test_commit_wait(stats: dict[str, Any]) -> None:
    cw = _src(stats, "A", "truetime")["commit_wait"]
    # T+0: widths 4, 4, 7, 4 ms
    assert cw["wait_ns"]["n"] == 4 and cw["wait_ns"]["mean_ns"] == 4.75 * MS
    assert (cw["wait_ns"]["p50_ns"], cw["wait_ns"]["max_ns"]) == (4 * MS, 7 * MS)
    r = cw["reevaluated"]["5"]
    # T+5 ms: widths 2, 3, 10, 3 ms → sorted [2, 3, 3, 10]
    assert r["n"] == 4 and r["no_refinement"] == 0
    assert r["wait_ns"]["mean_ns"] == 4.5 * MS and r["wait_ns"]["p50_ns"] == 3 * MS
    assert r["wait_ns"]["max_ns"] == 10 * MS
    assert r["narrower"]["k"] == 3 and r["coverage"]["k"] == 4
    w10 = r["windows"]["10"]
    assert (w10["ambiguous_t0"]["k"], w10["ambiguous"]["k"], w10["resolved"]) == (1, 1, 1)
    assert w10["confident_wrong"] == 0  # e1, e2, e4 now confident and right; e3 ambiguous
    w1000 = r["windows"]["1000"]
    assert (w1000["ambiguous_t0"]["k"], w1000["ambiguous"]["k"], w1000["resolved"]) == (0, 1, 0)
    rb = _src(stats, "B", "truetime")["commit_wait"]["reevaluated"]["5"]
    assert (rb["n"], rb["no_refinement"]) == (0, 1)
    assert _src(stats, "C", "truetime")["commit_wait"]["reevaluated"] == {}
    assert _src(stats, "B", "system")["commit_wait"] is None


# --- between workers --------------------------------------------------------------------------


def test_ordering_pairs(stats: dict[str, Any]) -> None:
    pairs = stats["ordering"]["pairs"]
    assert set(pairs) == {"A|B", "A|C", "B|C"}
    ab = pairs["A|B"]["sources"]
    assert ab["system"]["compared"] == 3 and pairs["A|B"]["events_missing"] == 1
    p = ab["system"]["point"]
    # e1 truth tie (1005 = 1005), e2 correct, e4 undecidable (B has no system reading)
    assert (p["undecidable"], p["decided"], p["truth_ties"], p["correct"], p["wrong"]) == (
        1,
        2,
        1,
        1,
        0,
    )
    b = ab["truetime"]["bounded"]
    # e1 overlap, e2 touching at 2006, e4 B [4001, 4004] before A [4006, 4010]: B first (true)
    assert (b["with_bounds"], b["ambiguous"], b["provable_correct"], b["provable_wrong"]) == (
        3,
        2,
        1,
        0,
    )
    p = ab["truetime"]["point"]  # estimates 1005 = 1005 is a claimed tie
    assert (p["claimed_ties"], p["correct"], p["wrong"]) == (1, 2, 0)
    ac = pairs["A|C"]["sources"]
    assert (ac["system"]["point"]["correct"], ac["system"]["point"]["wrong"]) == (2, 1)
    b = ac["truetime"]["bounded"]
    # e3: A [2990, 2997] before C [3003, 3005], but truth 3005 > 3004: provably WRONG
    assert (b["provable"], b["provable_correct"], b["provable_wrong"], b["ambiguous"]) == (
        3,
        2,
        1,
        0,
    )
    bc = pairs["B|C"]["sources"]
    assert (bc["system"]["point"]["correct"], bc["system"]["point"]["wrong"]) == (1, 1)
    assert (
        bc["truetime"]["bounded"]["provable_correct"],
        bc["truetime"]["bounded"]["ambiguous"],
    ) == (1, 1)


def test_ordering_totals(stats: dict[str, Any]) -> None:
    t = stats["ordering"]["total"]
    p = t["system"]["point"]
    assert t["system"]["compared"] == 3 + 3 + 2
    assert (p["decided"], p["truth_ties"], p["correct"], p["wrong"]) == (7, 1, 4, 2)
    assert p["accuracy"]["k"] == 4 and p["accuracy"]["n"] == 6
    b = t["truetime"]["bounded"]
    assert (b["with_bounds"], b["provable"], b["ambiguous"]) == (8, 5, 3)
    assert (b["provable_correct"], b["provable_wrong"]) == (4, 1)


def test_window_agreement(stats: dict[str, Any]) -> None:
    a = stats["window_agreement"]["system"]["10"]
    # events 1 and 2 reach all three workers; e1: B says [1010, 1020), others [1000, 1010)
    assert (a["events"], a["decided"], a["agree"], a["disagree"]) == (2, 2, 1, 1)
    assert a["truth_agree"]["k"] == 2
    b = stats["window_agreement"]["truetime"]["10"]["bounded"]
    assert (b["decided"], b["confident_agree"], b["confident_disagree"], b["ambiguous"]) == (
        2,
        1,
        0,
        1,
    )  # fmt: skip  (C's [1008, 1010] straddles)
    assert stats["window_agreement"]["system"]["1000"]["agree"] == 2


def test_coordination_cost(stats: dict[str, Any]) -> None:
    cc = stats["coordination_cost"]["truetime"]
    assert cc["mode"] == "bounded"
    o = cc["by_kind"]["ordering"]
    assert (o["decisions"], o["coordinate"], o["repair"]) == (8, 3, 1)
    w10 = cc["by_kind"]["window_10ms"]
    # ambiguous: A e4, C e1; confident-wrong: A e3
    assert (w10["decisions"], w10["coordinate"], w10["repair"]) == (4 + 3 + 3, 2, 1)
    w1000 = cc["by_kind"]["window_1000ms"]
    assert (w1000["coordinate"], w1000["repair"]) == (0, 1)
    tot = cc["total"]
    assert (tot["decisions"], tot["coordinate"], tot["repair"]) == (8 + 10 + 10, 3 + 2, 1 + 1 + 1)
    assert tot["difference"] == 5 - 3 and tot["actions"] == 8
    sc = stats["coordination_cost"]["system"]
    # ordering: 7 decided + 0 claimed ties, 2 wrong; windows: A 0, B 1 (10 ms), C 0 wrong
    assert sc["by_kind"]["ordering"] == {"decisions": 7, "coordinate": 0, "repair": 2}
    assert sc["by_kind"]["window_10ms"]["repair"] == 1
    assert sc["total"]["repair"] == 3 and sc["total"]["coordinate"] == 0


def test_summary_pools_workers(stats: dict[str, Any]) -> None:
    s = stats["summary"]["system"]["causality_violation_rate"]
    assert (s["k"], s["n"]) == (4 + 0 + 0, 4 + 2 + 3)
    cov = stats["summary"]["truetime"]["coverage"]
    # A 2/4; B: 1005∈[1004,1006], 2007∈[2006,2009], 4003∈[4001,4004]; C all 3 covered
    assert (cov["k"], cov["n"]) == (2 + 3 + 3, 10)


# --- without truth ----------------------------------------------------------------------------


def test_truthless_reports_unavailable_not_zero(
    stats: dict[str, Any], stats_no_truth: dict[str, Any]
) -> None:
    nt = stats_no_truth
    assert nt["truth_available"] is False and stats["truth_available"] is True
    a = _src(nt, "A", "truetime")
    assert a["error_vs_truth"]["available"] is False and "mean_ns" not in a["error_vs_truth"]
    assert a["bound_quality"]["available"] is False and "coverage" not in a["bound_quality"]
    assert a["causality"]["truth_violations"] is None
    assert a["windows"]["10"]["correct"] is None and a["windows"]["10"]["accuracy"] is None
    assert a["windows"]["10"]["bounded"]["confident_wrong"] is None
    o = nt["ordering"]["total"]["truetime"]
    assert o["point"]["correct"] is None and o["bounded"]["provable_wrong"] is None
    assert nt["coordination_cost"]["truetime"]["total"]["repair"] is None
    assert nt["summary"]["truetime"]["coverage"] is None
    # frame-internal metrics do not depend on truth
    for w in "ABC":
        for s in SOURCES:
            x, y = _src(nt, w, s), _src(stats, w, s)
            assert x["causality"]["violations"] == y["causality"]["violations"]
            assert x["causality"]["bounded"] == y["causality"]["bounded"]
            assert x["windows"]["10"]["decided"] == y["windows"]["10"]["decided"]
    assert nt["ordering"]["total"]["truetime"]["bounded"]["ambiguous"] == 3
    assert nt["window_agreement"]["system"]["10"]["agree"] == 1
    assert nt["window_agreement"]["system"]["10"]["truth_agree"] is None
    assert nt["coordination_cost"]["truetime"]["total"]["coordinate"] == 5


def test_window_offset_from_settings(tmp_path: Path) -> None:
    """Offset 3 ms shifts 10 ms windows to [..3, ..13): 1001 and 1004 part, 1004 and 1012 join."""
    sends = [{"event_id": 1, "truth": 990, "system": 990, "truetime": None}]
    rec = {
        "A": [{"event_id": 1, "truth": 1001, "system": 1004, "truetime": None}],
        "B": [{"event_id": 1, "truth": 1012, "system": 1012, "truetime": None}],
    }
    res = write_run(tmp_path / "r", sends, rec, window_sizes_ms=[10], window_offset_ms=3)
    st = analyze(res, make_figures=False)
    assert st["settings"]["window_sizes_ms"] == [10]
    assert st["settings"]["window_offset_ms"] == 3.0
    # truth 1001 ∈ [993, 1003), estimate 1004 ∈ [1003, 1013): wrong
    assert st["workers"]["A"]["sources"]["system"]["windows"]["10"]["wrong"] == 1
    assert st["workers"]["B"]["sources"]["system"]["windows"]["10"]["correct"] == 1
    assert st["window_agreement"]["system"]["10"]["agree"] == 1  # 1004 and 1012 share a window
    st0 = analyze(res, make_figures=False, settings=AnalysisSettings((10 * MS,), 0))
    assert st0["workers"]["A"]["sources"]["system"]["windows"]["10"]["wrong"] == 0
    assert st0["window_agreement"]["system"]["10"]["agree"] == 0


def test_unknown_events_and_bounded_detected_from_data(tmp_path: Path) -> None:
    """A source unknown to the registry counts as bounded when its data has earliest ≠ latest."""
    sends = [{"event_id": 1, "truth": 100, "mystery": (99, 100, 101)}]
    rec = {
        "A": [
            {"event_id": 1, "truth": 105, "mystery": 105},
            {"event_id": 7, "truth": 106, "mystery": 106},
        ],  # never sent
        "B": [{"event_id": 1, "truth": 104, "mystery": 104}],
    }
    res = write_run(tmp_path / "r", sends, rec, sources=["mystery"])
    st = analyze(res, make_figures=False)
    assert st["source_kinds"] == {"mystery": "bounded"}
    acc = st["workers"]["A"]["accounting"]
    assert (acc["received"], acc["unknown_events"], acc["lost"]) == (1, 1, 0)
    c = st["workers"]["A"]["sources"]["mystery"]["causality"]
    assert c["events"] == 1 and c["bounded"]["provably_after"] == 1  # 101 < 105


def test_bounded_comes_from_metadata_else_the_legacy_table(tmp_path: Path) -> None:
    """Whether a source returns intervals by design comes from metadata.json (``sources``:
    {name: {"bounded": bool}}, recorded by the run's writer); folders written before the field
    fall back to the fixed LEGACY_BOUNDED table. Readings here are points (earliest = latest),
    so the data adds nothing."""
    sends = [{"event_id": 1, "truth": 100, "truetime": 100, "mystery": 100}]
    rec = {
        "A": [{"event_id": 1, "truth": 105, "truetime": 105, "mystery": 105}],
        "B": [{"event_id": 1, "truth": 104, "truetime": 104, "mystery": 104}],
    }
    srcs = ["truetime", "mystery"]
    old = write_run(tmp_path / "old", sends, rec, sources=srcs)
    assert analyze(old, make_figures=False)["source_kinds"] == {
        "truetime": "bounded",  # named in the legacy table
        "mystery": "point",
    }
    new = write_run(tmp_path / "new", sends, rec, sources=srcs)
    meta = json.loads(new.metadata_path.read_text())
    meta["sources"] = {"truetime": {"bounded": False}, "mystery": {"bounded": True}}
    new.metadata_path.write_text(json.dumps(meta))
    assert analyze(new, make_figures=False)["source_kinds"] == {
        "truetime": "point",
        "mystery": "bounded",
    }


def test_writer_records_bounded_and_legacy_table_agrees_with_the_registry() -> None:
    """The launcher records each source's ``bounded`` from the source registry (the analysis
    itself imports no clock code); every name in the analysis's legacy table is bounded there."""
    from skewlab.clocks.sources import SOURCES, source_facts

    facts = source_facts(sorted(SOURCES))
    assert {n for n in LEGACY_BOUNDED if not facts[n]["bounded"]} == set()
    assert facts["system"] == {"bounded": False} and facts["ntp"] == {"bounded": False}
    assert source_facts(["truetime"]) == {"truetime": {"bounded": True}}


def test_truth_violation_is_reported(tmp_path: Path) -> None:
    sends = [
        {"event_id": 1, "truth": 100, "system": 100},
        {"event_id": 2, "truth": 200, "system": 200},
    ]
    rec = {
        "A": [
            {"event_id": 1, "truth": 100, "system": 101},
            {"event_id": 2, "truth": 201, "system": 201},
        ],
        "B": [{"event_id": 2, "truth": 199, "system": 199}],
    }
    st = analyze(write_run(tmp_path / "r", sends, rec, sources=["system"]), make_figures=False)
    assert st["workers"]["A"]["sources"]["system"]["causality"]["truth_violations"] == 1  # tie
    assert st["workers"]["B"]["sources"]["system"]["causality"]["truth_violations"] == 1
    assert st["workers"]["B"]["sources"]["system"]["causality"]["violations"] == 1


def test_every_rate_has_a_block_interval(stats: dict[str, Any]) -> None:
    """Every rate in stats.json carries method, n_eff and blocks; none uses Wilson's interval
    (independent trials), and every interval contains its own estimate."""
    found = 0

    def walk(x: Any) -> None:
        nonlocal found
        if isinstance(x, dict):
            if {"k", "n", "rate", "ci95"} <= x.keys():
                found += 1
                assert x["method"] == "block", x
                if x["n"]:
                    lo, hi = x["ci95"]
                    assert lo <= x["rate"] <= hi and 1 <= x["n_eff"] <= x["n"]
                    assert x["blocks"] >= 1
                return
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(stats)
    assert found > 100
    iv = stats["settings"]["intervals"]
    assert iv["method"] == "block" and iv["block_ns"] == 1_000_000_000 and iv["blocks"] == 4


# --- every rate name, known answers -----------------------------------------------------------

_KEYED = {"workers", "sources", "windows", "reevaluated", "coverage_by_status", "pairs",
          "coordination_cost", "summary", "window_wrong_rate", "window_ambiguous_rate",
          "window_confident_wrong_rate", "streams", "delays"}  # fmt: skip


def _rate_names(stats: dict[str, Any]) -> dict[str, list[tuple[str, ...]]]:
    """Every rate in the document: its name (the path with worker, source, size, Δ, status and
    pair keys replaced by *) → the concrete paths holding it."""
    out: dict[str, list[tuple[str, ...]]] = {}

    def name(path: tuple[str, ...]) -> str:
        n: list[str] = []
        i = 0
        while i < len(path):
            k = path[i]
            n.append(k)
            if (k in _KEYED or (k == "total" and n[:1] == ["ordering"])) and i + 1 < len(path):
                n.append("*")
                i += 1
            elif k == "window_agreement":
                n += ["*", "*"]
                i += 2
            i += 1
        return ".".join(n)

    def walk(x: Any, path: tuple[str, ...]) -> None:
        if isinstance(x, dict):
            if {"k", "n", "rate", "ci95"} <= x.keys():
                out.setdefault(name(path), []).append(path)
                return
            for k, v in x.items():
                walk(v, (*path, k))

    walk(stats, ())
    return out


# One hand-computed (k, n) per rate name, from the scenario's comments above.
KNOWN_RATES: dict[str, tuple[int, int]] = {
    # coordinator truetime: e1..e3 are truth ± 2 ms (covered), e4 has none; all SYNCHRONIZED
    "coordinator.sources.truetime.bound_quality.coverage": (3, 3),
    "coordinator.sources.truetime.bound_quality.coverage_by_status.SYNCHRONIZED": (3, 3),
    "workers.A.sources.system.causality.violation_rate": (4, 4),  # system = truth − 5 < send
    "workers.A.sources.truetime.windows.10.accuracy": (3, 4),  # estimate 2995 → [2990, 3000)
    "workers.A.sources.truetime.windows.10.wrong_rate": (1, 4),
    "workers.A.sources.truetime.bound_quality.coverage": (2, 4),  # e3 above, e4 below
    "workers.A.sources.truetime.bound_quality.coverage_by_status.FREE_RUNNING": (0, 1),  # e4
    "workers.A.sources.truetime.causality.bounded.provably_after_rate": (1, 3),  # e1
    "workers.A.sources.truetime.causality.bounded.ambiguous_rate": (1, 3),  # e2 touches
    "workers.A.sources.truetime.causality.bounded.violating_rate": (1, 3),  # e3
    "workers.A.sources.truetime.windows.10.bounded.ambiguous_rate": (1, 4),  # e4 straddles
    # confident: e1, e2 (right), e3 ([2990, 2997] in [2990, 3000), truth 3005: wrong)
    "workers.A.sources.truetime.windows.10.bounded.confident_wrong_rate": (1, 3),
    "workers.A.sources.truetime.commit_wait.reevaluated.5.narrower": (3, 4),  # widths 2, 3, 3
    "workers.A.sources.truetime.commit_wait.reevaluated.5.coverage": (4, 4),
    "workers.A.sources.truetime.commit_wait.reevaluated.5.windows.10.ambiguous_t0": (1, 4),
    "workers.A.sources.truetime.commit_wait.reevaluated.5.windows.1000.ambiguous": (1, 4),
    "ordering.pairs.A|C.sources.system.point.accuracy": (2, 3),  # e3: 3000 < 3001, truth not
    "ordering.pairs.A|C.sources.system.point.wrong_rate": (1, 3),
    "ordering.pairs.A|B.sources.truetime.bounded.ambiguous_rate": (2, 3),  # e1, e2 overlap
    "ordering.pairs.A|C.sources.truetime.bounded.provable_wrong_rate": (1, 3),  # e3
    "ordering.total.system.point.accuracy": (4, 6),
    "ordering.total.system.point.wrong_rate": (2, 6),
    # truetime estimates: A|B 2 correct (e1 a claimed tie), A|C 2 + e3 wrong, B|C 2 correct
    "ordering.total.truetime.point.accuracy": (6, 7),
    "ordering.total.truetime.point.wrong_rate": (1, 7),
    "ordering.total.truetime.bounded.ambiguous_rate": (3, 8),
    "ordering.total.truetime.bounded.provable_wrong_rate": (1, 5),  # 4 right + A|C e3
    "window_agreement.system.10.agree_rate": (1, 2),  # e1: B says [1010, 1020)
    "window_agreement.system.10.truth_agree": (2, 2),
    "window_agreement.truetime.10.bounded.ambiguous_rate": (1, 2),  # C's [1008, 1010]
    # truetime as designed: ordering 8 (3 ambiguous, 1 wrong) + 10 + 10 window decisions
    # (10 ms: 2 ambiguous, A e3 wrong; 1000 ms: A e3 wrong)
    "coordination_cost.truetime.total.coordinate_rate": (5, 28),
    "coordination_cost.truetime.total.repair_rate": (3, 28),
    # truetime's estimates: ordering 7 decided + 1 claimed tie (1 wrong); windows 10 + 10
    # (A's estimate 2995 wrong at both sizes)
    "coordination_cost.truetime.estimate_as_point.total.coordinate_rate": (1, 28),
    "coordination_cost.truetime.estimate_as_point.total.repair_rate": (3, 28),
    "coordination_cost.system.total.coordinate_rate": (0, 25),  # 7 + 9 + 9 decisions
    "coordination_cost.system.total.repair_rate": (3, 25),
    "summary.system.causality_violation_rate": (4, 9),  # A 4/4, B 0/2, C 0/3 (one tie)
    "summary.system.ordering_wrong_rate": (2, 6),
    "summary.system.window_wrong_rate.10": (1, 9),  # B's 1010 lands in [1010, 1020)
    "summary.truetime.window_wrong_rate.10": (1, 10),  # A's estimate 2995
    "summary.truetime.causality_ambiguous_rate": (1, 8),  # A 1/3, B 0/2, C 0/3
    "summary.truetime.causality_violating_rate": (1, 8),
    "summary.truetime.ordering_ambiguous_rate": (3, 8),
    "summary.truetime.ordering_provable_wrong_rate": (1, 5),
    "summary.truetime.window_ambiguous_rate.10": (2, 10),  # A e4, C e1
    "summary.truetime.window_confident_wrong_rate.10": (1, 8),  # A e3 among 3 + 3 + 2
    "summary.truetime.coverage": (8, 10),
    # event time (analysis/eventtime.py), every worker's receipts merged in true arrival order
    # (A1 B1 C1 A2 B2 C2 C3 A3 B4 A4), delay 0, allowed lateness 5 ms, tumbling 10 ms.
    # system (B4 unstamped): 1000 1010 1009 ...: 1010 moves the watermark to 1009 = the max
    # timestamp of [1000, 1010), so C1's 1009 is late (the window fired), kept (1009 + 5 > 1009)
    "event_time.sources.system.estimate.streams.all.delays.0.windows.tumbling_10.late": (1, 9),
    "event_time.sources.system.estimate.streams.all.delays.0.windows.tumbling_10.dropped": (0, 9),
    # truetime estimates: C3's 3004 moves it to 3003; A3's 2995 ([2990, 3000)) late, kept
    "event_time.summary.truetime.estimate.delays.0.late": (1, 10),
    "event_time.summary.truetime.estimate.delays.0.dropped": (0, 10),
    # truetime latest: C3's 3005 moves it to 3004 = 2999 + 5: A3's 2997 is dropped
    "event_time.sources.truetime.latest.streams.all.delays.0.windows.tumbling_10.late": (1, 10),
    "event_time.sources.truetime.latest.streams.all.delays.0.windows.tumbling_10.dropped": (1, 10),
    "event_time.summary.truetime.latest.delays.0.late": (1, 10),
    "event_time.summary.truetime.latest.delays.0.dropped": (1, 10),
}


def _at(stats: dict[str, Any], path: str) -> Any:
    x: Any = stats
    for k in path.split("."):
        x = x[k]
    return x


def test_every_rate_name_has_a_known_answer(stats: dict[str, Any]) -> None:
    """Each rate name in stats.json has a hand-computed (k, n) above: a new rate fails here
    until it has one. Every value is k/n and its interval contains it."""
    names = _rate_names(stats)
    covered = {n for n, paths in names.items() for p in paths if ".".join(p) in KNOWN_RATES}
    assert set(names) - covered == set()
    for path, (k, n) in KNOWN_RATES.items():
        r = _at(stats, path)
        assert (r["k"], r["n"]) == (k, n), path
        assert r["rate"] == pytest.approx(k / n), path
        lo, hi = r["ci95"]
        assert lo <= r["rate"] <= hi, path
    # the pooled numbers that are not rates: MAE, max |e|, mean commit-wait 2ε (truetime)
    s = stats["summary"]["truetime"]
    assert s["mae_ns"] == pytest.approx((0 + 1 + 10 + 3) / 10 * MS)  # B, C exact
    assert s["max_abs_ns"] == 10 * MS
    # widths A 4, 4, 7, 4; B 2, 3, 3; C 2, 2, 2 ms
    assert s["commit_wait_mean_ns"] == pytest.approx((19 + 8 + 6) / 10 * MS)
    assert s["ordering_provable_wrong"] == 1 and s["coordinate"] == 5 and s["repair"] == 3


def test_rate_definitions_cover_every_rate_name(stats: dict[str, Any]) -> None:
    """stats.json states numerator and denominator of every rate it holds."""
    defs = stats["rate_definitions"]
    for name in _rate_names(stats):
        parts = [p for p in name.split(".") if p != "*"]
        if parts[0] == "summary":
            assert stats["summary_rates"][parts[1]] in defs, name
            continue
        if parts[0] in ("workers", "coordinator"):
            parts = parts[2:]  # sources
        elif parts[0] == "ordering":
            parts = ["ordering", *parts[3:]] if parts[1] == "pairs" else ["ordering", *parts[2:]]
        elif parts[0] == "coordination_cost":
            parts = ["coordination_cost", *[p for p in parts[1:] if p != "estimate_as_point"]]
        elif parts[0] == "event_time":  # by source, variant, stream, delay, window
            parts = ["event_time", parts[-1]]
        assert ".".join(parts) in defs, name
