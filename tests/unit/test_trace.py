"""Trace writing and loading: batches, nulls from the wire, commit-wait join, CSV export."""

from __future__ import annotations

import csv
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from skewlab.clocks.base import Status
from skewlab.net.wire import NO_VALUE
from skewlab.trace import (
    CW_NO_REFINEMENT,
    TRACE_VERSION,
    PartWriter,
    commit_wait_delays_ms,
    commit_wait_prefix,
    commit_wait_schema,
    load_receipts,
    part_files,
    read_parts,
    receipt_schema,
    wire_sentinel_columns,
)

SOURCES = ["system", "ntp"]


def _receipt(eid: int, ntp_value: int | None) -> tuple:
    """A receipt row: ids, times, own readings (system, ntp), send readings from the wire."""
    ntp_own = (ntp_value, ntp_value, ntp_value, Status.SYNCHRONIZED if ntp_value else 0)
    wire_ntp = (2, 900 + eid, 900 + eid, 900 + eid) if ntp_value else (0, *[NO_VALUE] * 3)
    return (eid, eid, 1000 + eid, 1100 + eid, 950 + eid,
            1100 + eid, 1100 + eid, 1100 + eid, Status.FREE_RUNNING, *ntp_own,
            1, 940 + eid, 940 + eid, 940 + eid, *wire_ntp)  # fmt: skip


def _writer(d: Path, batch: int = 4) -> PartWriter:
    return PartWriter(d, "events", receipt_schema(SOURCES), batch, wire_sentinel_columns(SOURCES))


def test_batches_are_whole_files_and_nulls_survive(tmp_path: Path) -> None:
    w = _writer(tmp_path)
    for i in range(10):
        w.append(_receipt(i, None if i % 3 == 0 else 5000 + i))
    # two full batches written, two rows pending in memory
    assert len(part_files(tmp_path, "events")) == 2 and w.pending == 2
    assert not list(tmp_path.glob(".*tmp"))
    w.flush()
    assert w.rows_written == 10 and w.parts_written == 3
    t = read_parts(tmp_path, "events")
    assert t.num_rows == 10
    assert t.schema.metadata[b"skewlab.trace_version"] == str(TRACE_VERSION).encode()
    rows = t.to_pylist()
    for r in rows:
        i = r["event_id"]
        has = i % 3 != 0
        assert (r["ntp_estimate_ns"] is not None) == has
        # the wire's "no value" sentinel became null; real values are untouched
        assert (r["send_ntp_estimate_ns"] is not None) == has
        if has:
            assert r["send_ntp_latest_ns"] == 900 + i and r["send_ntp_status"] == 2
        else:
            assert r["send_ntp_status"] == 0
        assert r["system_status"] == int(Status.FREE_RUNNING)
        assert r["send_system_estimate_ns"] == 940 + i


def test_column_batches_and_rows_keep_their_order(tmp_path: Path) -> None:
    """append_columns (the commit-wait pass) and row appends mix in one writer: order kept,
    sentinels of the row path still become null, a part is written once a batch is full."""
    import pyarrow as pa

    w = _writer(tmp_path, batch=8)
    w.append(_receipt(0, None))
    rows = [_receipt(i, 5000 + i) for i in (1, 2, 3)]
    w.append_columns([pa.array(list(c), type=f.type) for c, f in
                      zip(zip(*rows, strict=True), w.schema, strict=True)])  # fmt: skip
    assert w.pending == 4 and not part_files(tmp_path, "events")
    w.append(_receipt(4, None))
    more = [_receipt(i, 5000 + i) for i in range(5, 9)]
    w.append_columns([pa.array(list(c), type=f.type) for c, f in
                      zip(zip(*more, strict=True), w.schema, strict=True)])  # fmt: skip
    assert w.pending == 0 and w.rows_written == 9 and w.parts_written == 1
    t = read_parts(tmp_path, "events")
    assert t.column("event_id").to_pylist() == list(range(9))
    assert t.column("send_ntp_estimate_ns").to_pylist()[0] is None  # row path: sentinel → null
    assert t.column("send_ntp_estimate_ns").to_pylist()[1] == 901


def test_crash_leaves_only_complete_parts(tmp_path: Path) -> None:
    """A stale temporary (a write cut short) is invisible to readers."""
    w = _writer(tmp_path)
    for i in range(4):
        w.append(_receipt(i, 1))
    (tmp_path / ".events-000001.parquet.tmp").write_bytes(b"PAR1 half a file")
    assert read_parts(tmp_path, "events").num_rows == 4


def test_commit_wait_columns_join_beside_receipts(tmp_path: Path) -> None:
    w = _writer(tmp_path, batch=100)
    for i in range(6):
        w.append(_receipt(i, 10_000 + i))
    w.flush()
    cw_sources = ["ntp", "system"]
    for d in (250, 500):
        cw = PartWriter(tmp_path, commit_wait_prefix(d), commit_wait_schema(cw_sources, d), 2)
        # receipts 0..3 re-evaluated (out of arrival order); 4, 5 never were (run stopped)
        for i in (1, 0, 3, 2):
            cw.append((i, d * 1_000_000 + 7, 10_000 + i - d, 10_000 + i + d, 2,
                       None, None, CW_NO_REFINEMENT))  # fmt: skip
        cw.flush()
    assert commit_wait_delays_ms(tmp_path) == [250, 500]
    t = load_receipts(tmp_path, SOURCES)
    assert t.column("event_id").to_pylist() == list(range(6))  # arrival order kept
    rows = t.to_pylist()
    for r in rows[:4]:
        i = r["event_id"]
        assert r["ntp_cw250_earliest_ns"] == 10_000 + i - 250
        assert r["ntp_cw500_latest_ns"] == 10_000 + i + 500
        assert r["cw500_age_ns"] == 500_000_007
        assert r["system_cw250_status"] == CW_NO_REFINEMENT and r["system_cw250_latest_ns"] is None
    for r in rows[4:]:
        assert r["ntp_cw250_earliest_ns"] is None and r["ntp_cw250_status"] is None
    schema = pq.read_schema(part_files(tmp_path, "cw500")[0])
    assert schema.metadata[b"skewlab.commit_wait_delay_ms"] == b"500"


def test_load_receipts_without_commit_wait(tmp_path: Path) -> None:
    assert load_receipts(tmp_path / "none", SOURCES).num_rows == 0
    w = _writer(tmp_path)
    w.append(_receipt(1, 3))
    w.flush()
    assert load_receipts(tmp_path, SOURCES).num_rows == 1


def test_export_csv(tmp_path: Path) -> None:
    from skewlab.cli.export import export
    from skewlab.spec import ExperimentSpec
    from skewlab.store import ResultsDir

    res = ResultsDir(tmp_path / "exp")
    res.root.mkdir()
    res.spec_path.write_text(ExperimentSpec(sources=SOURCES).to_json())
    w = _writer(res.node_dir("B"))
    for i in range(5):
        w.append(_receipt(i, None if i == 2 else 7))
    w.flush()
    out = tmp_path / "csvout"
    r = CliRunner().invoke(export, [str(res.root), "--csv", "--out", str(out)])
    assert r.exit_code == 0, r.output
    with open(out / "B" / "events.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(x["event_id"]) for x in rows] == list(range(5))
    assert rows[2]["ntp_estimate_ns"] == "" and rows[1]["ntp_estimate_ns"] == "7"
    assert rows[2]["send_ntp_estimate_ns"] == ""


@pytest.mark.parametrize("args", [["--csv"], []])
def test_export_errors_are_one_line(tmp_path: Path, args: list[str]) -> None:
    from skewlab.cli.export import export

    r = CliRunner().invoke(export, [str(tmp_path), *args])
    assert r.exit_code == 2
    assert r.output.strip().startswith("skewlab: error:") or "Error" in r.output


def test_sentinels_become_null_exactly_and_a_none_stays_null(tmp_path: Path) -> None:
    """NO_VALUE → null with every other int64 kept exact (values past 2^53, where a float
    round trip would move them), in a batch without nulls (the numpy path) and in one where a
    row gave None itself (pyarrow.compute), which stays null."""
    import pyarrow as pa

    big = 1_796_157_549_628_058_108  # ns since 1970, > 2^53
    schema = pa.schema([pa.field("i", pa.int64()), pa.field("v", pa.int64())])
    w = PartWriter(tmp_path, "x", schema, 100, ["v"])
    clean = w.to_table([(1, big), (2, NO_VALUE), (3, big + 1)])
    assert clean.column("v").to_pylist() == [big, None, big + 1]
    holed = w.to_table([(4, None), (5, NO_VALUE), (6, big + 3)])
    assert holed.column("v").to_pylist() == [None, None, big + 3]
    plain = w.to_table([(7, big + 5)])
    assert plain.column("v").to_pylist() == [big + 5] and plain.column("v").null_count == 0
