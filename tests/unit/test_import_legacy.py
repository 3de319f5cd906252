"""Import of the original framework's CSV traces: known answers from small hand-written files.

Times are written in the CSVs as integer ns; the comments give them in ms. Coordinator sends
events 1, 2, 3 at system times 1000, 2000, 3000 ms; worker B receives 1 and 2, worker C all
three. No true time exists, so every truth-based number must come out unavailable (None), never 0.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from skewlab.analysis import analyze
from skewlab.analysis.importer import LegacyImportError, import_legacy
from skewlab.cli import cli
from skewlab.store import ResultsDir

MS = 1_000_000

COORD_HEADER = (
    "event_id,sequence_number,send_time_ns,send_time_iso,ntp_offset_ms,ntp_timestamp_ns,"
    "ct_offset_ms,ct_timestamp_ns,pattern_delay_ms,workers_sent,workers_failed"
)
COORD_ROWS = [
    # ntp reads +0.5 ms, ChronoTick +0.1 ms; event 2 has no ChronoTick reading
    "1,0,1000000000,2024-01-01T00:00:01Z,0.5,1000500000,0.1,1000100000,10.5,2,0",
    "2,1,2000000000,2024-01-01T00:00:02Z,0.5,2000500000,,,10,2,0",
    "3,2,3000000000,2024-01-01T00:00:03Z,0.5,3000500000,0.1,3000100000,10,1,1",
]
WORKER_HEADER = (
    "event_id,node_id,sequence_number,receive_time_ns,coordinator_send_time_ns,ntp_offset_ms,"
    "ntp_uncertainty_ms,ntp_timestamp_ns,ct_offset_ms,ct_drift_rate,ct_uncertainty_ms,"
    "ct_confidence,ct_source,ct_prediction_time,ct_timestamp_ns,ct_lower_bound_ns,"
    "ct_upper_bound_ns,ct_uncertainty_30s_ms,ct_uncertainty_60s_ms"
)
B_ROWS = [
    # e1: system 1000.2 > send 1000 (after); ntp 1000.4 < send's 1000.5 (violation);
    #     chronotick 1000.3 > send's 1000.1 (after), interval [1000.15, 1000.45]
    "1,B,0,1000200000,1000000000,0.2,1.0,1000400000,0.1,1e-6,0.15,0.9,model,0.0,"
    "1000300000,1000150000,1000450000,0.2,0.3",
    # e2: system 1999.9 < send 2000 (violation); ntp 2000.6 > 2000.5 (after);
    #     chronotick: the coordinator has none → undecidable; interval [2000.1, 2000.3]
    "2,B,1,1999900000,2000000000,0.2,1.0,2000600000,0.1,1e-6,0.1,0.9,model,0.0,"
    "2000200000,2000100000,2000300000,0.2,0.3",
]
C_ROWS = [
    # e1: system 1000 == send 1000 (a tie, not a violation); ntp 1000.5 == 1000.5 (tie);
    #     chronotick 1050 (after), interval [1049.9, 1050.1] straddles the 1050 ms boundary
    "1,C,0,1000000000,1000000000,0.0,1.0,1000500000,0.1,1e-6,0.1,0.9,model,0.0,"
    "1050000000,1049900000,1050100000,,",
    # e2: system 2000.1 (after); ntp 2000.7 (after); chronotick 2000.25 in [2000.2, 2000.4]
    "2,C,1,2000100000,2000000000,0.0,1.0,2000700000,0.1,1e-6,0.1,0.9,model,0.0,"
    "2000250000,2000200000,2000400000,,",
    # e3: no ntp reading and no ChronoTick reading (empty fields); system 3000.3 (after)
    "3,C,2,3000300000,3000000000,,,,,,,,,,,,,,",
]


def write_legacy(d: Path, ct: bool = True, b_rows: list[str] | None = None) -> Path:
    """A legacy folder; without ct, every ct_* column is dropped from every file."""
    d.mkdir(parents=True, exist_ok=True)

    def body(header: str, rows: list[str]) -> str:
        if ct:
            return "\n".join([header, *rows]) + "\n"
        keep = [i for i, h in enumerate(header.split(",")) if not h.startswith("ct_")]
        lines = [header, *rows]
        return "\n".join(",".join(ln.split(",")[i] for i in keep) for ln in lines) + "\n"

    (d / "coordinator.csv").write_text(body(COORD_HEADER, COORD_ROWS))
    (d / "worker_B.csv").write_text(body(WORKER_HEADER, b_rows or B_ROWS))
    (d / "worker_C.csv").write_text(body(WORKER_HEADER, C_ROWS))
    return d


def test_import_writes_a_results_folder(tmp_path: Path) -> None:
    res = import_legacy(write_legacy(tmp_path / "legacy"), tmp_path / "out")
    assert res.root.name == "legacy-legacy"
    spec = json.loads(res.spec_path.read_text())
    assert spec["sources"] == ["system", "ntp", "chronotick"]
    assert [n["name"] for n in spec["nodes"]] == ["coordinator", "B", "C"]
    meta = json.loads(res.metadata_path.read_text())
    assert meta["truth_available"] is False
    assert meta["import"]["files"]["worker_B.csv"]["rows"] == 2

    send = pq.read_table(res.node_dir("coordinator") / "events-000000.parquet").to_pylist()
    assert [r["truth_ns"] for r in send] == [None, None, None]  # never 0
    assert send[0]["scheduled_delay_ns"] == 10 * MS + MS // 2  # 10.5 ms
    assert send[0]["pacing_error_ns"] is None  # not recorded
    assert send[2]["workers_failed"] == 1
    assert send[0]["chronotick_estimate_ns"] == 1000100000
    assert send[0]["chronotick_earliest_ns"] is None  # coordinator: no ChronoTick bounds
    assert send[1]["chronotick_estimate_ns"] is None
    assert send[0]["system_status"] is None  # the legacy traces record no status

    rec = pq.read_table(res.node_dir("B") / "events-000000.parquet").to_pylist()
    assert rec[0]["truth_ns"] is None
    assert rec[0]["system_estimate_ns"] == rec[0]["system_latest_ns"] == 1000200000
    assert (rec[0]["chronotick_earliest_ns"], rec[0]["chronotick_latest_ns"]) == (
        1000150000,
        1000450000,
    )
    # the send readings: system from the worker's own column, ntp/ct from coordinator.csv
    assert rec[1]["send_system_estimate_ns"] == 2000000000
    assert rec[0]["send_ntp_estimate_ns"] == 1000500000
    assert rec[0]["send_chronotick_estimate_ns"] == 1000100000
    assert rec[1]["send_chronotick_estimate_ns"] is None
    assert rec[0]["legacy_ct_source"] == "model"  # unmapped columns kept
    assert rec[0]["legacy_ct_uncertainty_30s_ms"] == pytest.approx(0.2)


def test_imported_analysis_known_answers(tmp_path: Path) -> None:
    res = import_legacy(write_legacy(tmp_path / "legacy"), tmp_path / "out")
    stats = analyze(res, make_figures=False)
    assert stats["truth_available"] is False and stats["imported"] is True
    assert stats["truth_unavailable_reason"]
    b, c = stats["workers"]["B"], stats["workers"]["C"]
    assert b["accounting"] == {
        "sent": 3,
        "received": 2,
        "lost": 1,
        "unknown_events": 0,
        "duplicate_rows": 0,
    }
    assert c["accounting"]["lost"] == 0

    # causality in the nodes' own frames (see the row comments)
    bs, cs = b["sources"], c["sources"]
    assert (bs["system"]["causality"]["violations"], bs["system"]["causality"]["decided"]) == (1, 2)
    assert (bs["ntp"]["causality"]["violations"], bs["ntp"]["causality"]["decided"]) == (1, 2)
    assert (cs["system"]["causality"]["violations"], cs["system"]["causality"]["ties"]) == (0, 1)
    assert cs["ntp"]["causality"]["decided"] == 2  # e3 has no ntp reading
    assert cs["ntp"]["causality"]["ties"] == 1
    ct_b = bs["chronotick"]["causality"]
    assert (ct_b["decided"], ct_b["violations"], ct_b["undecidable"]) == (1, 0, 1)
    assert ct_b["truth_violations"] is None
    # no coordinator bounds → no bounded causality decision at all
    assert ct_b["bounded"]["decided"] == 0 and ct_b["bounded"]["undecidable"] == 2
    assert cs["chronotick"]["readings"]["unanswered"] == 1

    # truth-based: unavailable, never 0
    assert bs["system"]["error_vs_truth"]["available"] is False
    bq = bs["chronotick"]["bound_quality"]
    assert bq["available"] is False and "coverage" not in bq
    assert bq["n"] == 2
    # half-widths B: 0.15 and 0.10 ms → p50 (nearest rank 1 of 2) = 0.10 ms
    assert bq["half_width_ns"]["p50_ns"] == pytest.approx(0.10 * MS)
    w50 = bs["system"]["windows"]["50"]
    assert w50["decided"] == 2 and w50["correct"] is None and w50["wrong"] is None
    # C's e1 interval [1049.9, 1050.1] straddles 1050 (50 ms windows) but not 1100 (100 ms)
    assert cs["chronotick"]["windows"]["50"]["bounded"]["ambiguous"] == 1
    assert cs["chronotick"]["windows"]["100"]["bounded"]["ambiguous"] == 0
    assert cs["chronotick"]["windows"]["50"]["bounded"]["confident_wrong"] is None

    # ordering B vs C over the events both received (1, 2)
    o = stats["ordering"]["total"]
    # system: e1 B 1000.2 vs C 1000 (B later), e2 1999.9 vs 2000.1 (B earlier): 2 claims, 0 ties
    assert o["system"]["compared"] == 2
    assert o["system"]["point"]["decided"] == 2 and o["system"]["point"]["wrong"] is None
    # chronotick bounds: e1 [1000.15, 1000.45] vs [1049.9, 1050.1] disjoint → provable;
    # e2 [2000.1, 2000.3] vs [2000.2, 2000.4] overlap → ambiguous
    ob = o["chronotick"]["bounded"]
    assert (ob["provable"], ob["ambiguous"], ob["provable_wrong"]) == (1, 1, None)
    cc = stats["coordination_cost"]["chronotick"]["total"]
    assert cc["repair"] is None and cc["difference"] is None


def test_import_without_chronotick_and_report(tmp_path: Path) -> None:
    res = import_legacy(write_legacy(tmp_path / "legacy", ct=False), tmp_path / "out")
    assert json.loads(res.spec_path.read_text())["sources"] == ["system", "ntp"]
    stats = analyze(res, make_figures=True)
    assert set(stats["source_kinds"].values()) == {"point"}
    assert stats["workers"]["B"]["sources"]["system"]["causality"]["violations"] == 1
    md = res.report_md.read_text()
    assert "True time is unavailable" in md and "Imported traces" in md
    assert "ntp_timestamp_ns (point)" in md  # the mapping table
    assert "the coordinator's send reading (its clock)" in md  # the frames table
    assert (res.root / "report.html").read_text().count("<img") >= 1


@pytest.mark.parametrize(
    ("rows", "expect"),
    [
        (["1,B,0,10x00,1000000000,0.2,1.0,1,,,,,,,,,,,"], "worker_B.csv:2: column receive_time_ns"),
        (["1,B,0,1000,1000000000"], "worker_B.csv:2: 5 fields, the header has 19"),
        (
            ["1,B,0,,1000000000,0.2,1.0,1,,,,,,,,,,,"],
            "worker_B.csv:2: column receive_time_ns: empty",
        ),
        (
            [B_ROWS[0], "2,B,1,2000,2000,0.2,oops,2,,,,,,,,,,,"],
            "worker_B.csv:3: column ntp_uncertainty_ms: 'oops' is not a number",
        ),
        (
            ["1,B,0,1000,1000,0.2,1.0,1,0.1,0,0,0,m,0,5,9,4,,"],
            "worker_B.csv:2: column ct_lower_bound_ns: 9 > ct_upper_bound_ns 4",
        ),
    ],
)
def test_malformed_csv_names_file_line_column(tmp_path: Path, rows: list[str], expect: str) -> None:
    src = write_legacy(tmp_path / "legacy", b_rows=rows)
    with pytest.raises(LegacyImportError, match=expect.replace(".", r"\.")):
        import_legacy(src, tmp_path / "out")
    assert not (tmp_path / "out" / "legacy-legacy").exists()  # nothing half-imported


def test_missing_column_and_cli_error(tmp_path: Path) -> None:
    src = write_legacy(tmp_path / "legacy")
    text = (src / "coordinator.csv").read_text().replace("workers_failed", "wf")
    (src / "coordinator.csv").write_text(text)
    r = CliRunner().invoke(cli, ["import-legacy", str(src), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2
    err = r.stderr.strip() if hasattr(r, "stderr") else r.output.strip()
    assert err.count("\n") == 0
    assert err.startswith("skewlab: error: ") and "coordinator.csv:1: missing column(s)" in err


def test_cli_imports_and_analyze_handles_it(tmp_path: Path) -> None:
    src = write_legacy(tmp_path / "legacy")
    out = tmp_path / "o"
    r = CliRunner().invoke(cli, ["import-legacy", str(src), "--out", str(out), "--name", "x"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["analyze", str(out / "x"), "--no-figures"])
    assert r.exit_code == 0, r.output
    stats = json.loads(ResultsDir(out / "x").stats_path.read_text())
    assert stats["imported"] is True and stats["import"]["chronotick"] is True


def test_cli_import_analyze_without_figures(tmp_path: Path) -> None:
    """--analyze --no-figures: stats.json, no figure; --no-figures alone is refused before
    anything is written (it would do nothing)."""
    src = write_legacy(tmp_path / "legacy")
    out = tmp_path / "o"
    args = ["import-legacy", str(src), "--out", str(out), "--name", "x", "--no-figures"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 2 and "--no-figures applies to --analyze" in r.output
    assert not out.exists()
    r = CliRunner().invoke(cli, [*args, "--analyze", "-q"])
    assert r.exit_code == 0, r.output
    stats = json.loads(ResultsDir(out / "x").stats_path.read_text())
    assert stats["imported"] is True and not stats.get("figures")
    assert not (out / "x" / "figures").exists()


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", ".hidden", "", "x" * 101, "a b"])
def test_name_is_checked_before_it_becomes_a_path(tmp_path: Path, name: str) -> None:
    """issue 20, item 6: a --name that is not one plain folder name is refused (exit 2, one
    line), and nothing is written anywhere."""
    src = write_legacy(tmp_path / "legacy")
    out = tmp_path / "base" / "o"
    r = CliRunner().invoke(cli, ["import-legacy", str(src), "--out", str(out), "--name", name])
    assert r.exit_code == 2, r.output
    assert isinstance(r.exception, SystemExit)
    err = r.stderr.strip()
    assert err.startswith("skewlab: error: --name: ") and err.count("\n") == 0, err
    assert not (tmp_path / "base").exists() and not (tmp_path / "escape").exists()


def test_existing_name_is_refused_not_renamed(tmp_path: Path) -> None:
    src = write_legacy(tmp_path / "legacy")
    out = tmp_path / "o"
    args = ["import-legacy", str(src), "--out", str(out), "--name", "x"]
    assert CliRunner().invoke(cli, args).exit_code == 0
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 2 and "already exists; choose another --name" in r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["x"]


def test_worker_lists_as_the_original_coordinator_wrote_them(tmp_path: Path) -> None:
    """The original coordinator wrote ``workers_sent``/``workers_failed`` as comma-joined
    ``host:port`` lists (quoted in the CSV; empty when none): imported as their counts, the
    addresses kept as legacy columns; a field that is neither a count nor addresses is one line
    naming file, line and column."""
    src = write_legacy(tmp_path / "lists")
    rows = [
        "1,0,1000000000,2024-01-01T00:00:01Z,0.5,1000500000,0.1,1000100000,10.5,"
        '"host-a:9000,host-b:9000",',
        '2,1,2000000000,2024-01-01T00:00:02Z,0.5,2000500000,,,10,"host-a:9000,host-b:9000",',
    ]
    (src / "coordinator.csv").write_text("\n".join([COORD_HEADER, *rows]) + "\n")
    res = import_legacy(src, tmp_path / "out")
    t = pq.read_table(next((res.root / "traces" / "coordinator").glob("*.parquet"))).to_pylist()
    assert [r["workers_sent"] for r in t] == [2, 2]
    assert [r["workers_failed"] for r in t] == [0, 0]  # empty: none failed
    assert [r["legacy_workers_sent_addresses"] for r in t] == ["host-a:9000,host-b:9000"] * 2
    bad = tmp_path / "bad"
    write_legacy(bad)
    (bad / "coordinator.csv").write_text(
        COORD_HEADER + '\n1,0,1000000000,x,0.5,1000500000,0.1,1000100000,10.5,"a b",0\n'
    )
    with pytest.raises(LegacyImportError, match=r"coordinator\.csv:2: column workers_sent"):
        import_legacy(bad, tmp_path / "out2")


def test_original_definitions_are_reported_beside_skewlabs(tmp_path: Path) -> None:
    """The original analysis's causality counts, by hand from the files above, with B's e2
    ChronoTick reading moved to 1999.95 ms: the coordinator recorded no ChronoTick reading of
    e2, so the original compared it with send_time_ns (2000 ms) and counted a violation, where
    skewlab (same source only) leaves it undecided."""
    b_rows = [B_ROWS[0], "2,B,1,1999900000,2000000000,0.2,1.0,2000600000,0.1,1e-6,0.1,0.9,"
              "model,0.0,1999950000,1999900000,2000000000,0.2,0.3"]  # fmt: skip
    res = import_legacy(write_legacy(tmp_path / "src", b_rows=b_rows), tmp_path / "out")
    orig = json.loads(res.metadata_path.read_text())["import"]["original_definitions"]
    w = orig["workers"]
    # B: system e2 1999.9 < 2000 (1 of 2); ntp e1 1000.4 < 1000.5 (1 of 2); chronotick e1
    # 1000.3 vs 1000.1 (after), e2 1999.95 vs send_time 2000 (violation, vs send_time)
    assert w["B"]["system"] == {"compared": 2, "violations": 1, "vs_send_time": 0}
    assert w["B"]["ntp"] == {"compared": 2, "violations": 1, "vs_send_time": 0}
    assert w["B"]["chronotick"] == {"compared": 2, "violations": 1, "vs_send_time": 1}
    # C: e1 ties are not violations; e3 has no ntp and no ChronoTick reading
    assert w["C"]["system"] == {"compared": 3, "violations": 0, "vs_send_time": 0}
    assert w["C"]["ntp"] == {"compared": 2, "violations": 0, "vs_send_time": 0}
    assert w["C"]["chronotick"] == {"compared": 2, "violations": 0, "vs_send_time": 1}
    stats = analyze(res, make_figures=False)
    sk = stats["workers"]["B"]["sources"]["chronotick"]["causality"]
    assert (sk["violations"], sk["decided"]) == (0, 1)  # skewlab: e2 undecided
    from skewlab.analysis.report import blocks, to_markdown

    report = to_markdown(blocks(stats))
    assert "The original framework's definitions" in report
    assert "| B | chronotick | 1/2 | 1 | 0/1 |" in report
