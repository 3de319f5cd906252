"""The analysis's alternative read paths give the same numbers as the main one.

The main path reads each receipt's send readings from its wire columns and merges on sorted
event ids; traces without wire columns (version 1), receipts out of order and duplicated
receipt rows take other paths, which must not change a single count. Built on the known-answer
scenario of test_analysis_metrics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from skewlab.analysis import analyze
from skewlab.trace import send_source_columns
from tests.unit.test_analysis_metrics import CW, RECEIPTS, SENDS, SOURCES, write_run

SIZES = [10, 1000]


def _run(root: Path, receipts: dict[str, list[dict[str, Any]]] = RECEIPTS) -> Path:
    res = write_run(root, SENDS, receipts, cw=CW, window_sizes_ms=SIZES)
    return res.root


def _stats(root: Path) -> dict[str, Any]:
    from skewlab.store import ResultsDir

    s = analyze(ResultsDir(root), make_figures=False)
    s.pop("experiment_id")
    return s


def _rewrite(root: Path, worker: str, fn: Any) -> None:
    p = root / "traces" / worker / "events-000000.parquet"
    pq.write_table(fn(pq.read_table(p)), p)


def test_receipts_without_wire_columns_use_the_send_trace(tmp_path: Path) -> None:
    main = _stats(_run(tmp_path / "a"))
    root = _run(tmp_path / "b")
    wire = [c for s in SOURCES for c in send_source_columns(s)]
    for w in RECEIPTS:
        _rewrite(root, w, lambda t: t.drop_columns(wire))
    assert _stats(root) == main


def test_unsorted_receipts_give_the_same_numbers(tmp_path: Path) -> None:
    main = _stats(_run(tmp_path / "a"))
    reversed_ = {w: list(reversed(rows)) for w, rows in RECEIPTS.items()}
    assert _stats(_run(tmp_path / "b", reversed_)) == main


def test_duplicate_receipt_rows(tmp_path: Path) -> None:
    main = _stats(_run(tmp_path / "a"))
    # A receives event 2 twice; the second copy carries other readings
    dup = {"event_id": 2, "truth": 2500, "system": 900, "truetime": (880, 900, 920)}
    stats = _stats(_run(tmp_path / "b", {**RECEIPTS, "A": [*RECEIPTS["A"], dup]}))
    acc = stats["workers"]["A"]["accounting"]
    assert (acc["duplicate_rows"], acc["received"], acc["lost"]) == (1, 4, 0)
    # ordering and agreement use the first row of each event: unchanged
    assert stats["ordering"] == main["ordering"]
    assert stats["window_agreement"] == main["window_agreement"]
    # per-row metrics count every row: one more decided causality comparison, and the copy's
    # system 900 < the send's 2001 is one more violation
    c, c0 = (s["workers"]["A"]["sources"]["system"]["causality"] for s in (stats, main))
    assert (c["decided"], c["violations"]) == (c0["decided"] + 1, c0["violations"] + 1)


def test_partly_null_truth_is_unavailable_not_zero(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.compute as pc

    root = _run(tmp_path / "a")

    def null_first(t: pa.Table) -> pa.Table:
        i = t.schema.get_field_index("truth_ns")
        col = t.column(i)
        mask = pa.array([k == 0 for k in range(t.num_rows)])
        field = pa.field("truth_ns", pa.int64(), nullable=True)
        return t.set_column(i, field, pc.if_else(mask, pa.scalar(None, pa.int64()), col))

    _rewrite(root, "B", null_first)
    stats = _stats(root)
    assert stats["truth_available"] is False
    assert "B" in stats["truth_unavailable_reason"]
    a = stats["workers"]["A"]["sources"]["truetime"]
    assert a["error_vs_truth"]["available"] is False and a["bound_quality"]["available"] is False
    assert stats["ordering"]["total"]["system"]["point"]["wrong"] is None
