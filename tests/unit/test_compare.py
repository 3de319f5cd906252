"""`skewlab compare` on two small hand-built runs that differ only in the window offset.

Both runs: coordinator sends e1, e2 at true 1000, 2000 ms (system reads +1 ms); workers A and
B receive both. Only the 100 ms windows' offset differs (0 vs 50 ms), which moves exactly one
window decision (B's e2) from correct to wrong.
"""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from skewlab.analysis import analyze
from skewlab.analysis.compare import compare, format_table
from skewlab.cli import cli
from tests.unit.test_analysis_metrics import write_run

SENDS = [
    {"event_id": 1, "truth": 1000, "system": 1001, "truetime": (998, 1000, 1002)},
    {"event_id": 2, "truth": 2000, "system": 2001, "truetime": (1998, 2000, 2002)},
]
RECEIPTS = {
    "A": [
        # system 1000 < send 1001: the one causality violation of the run
        {"event_id": 1, "truth": 1005, "system": 1000, "truetime": (1003, 1005, 1007)},
        {"event_id": 2, "truth": 2005, "system": 2010, "truetime": (2003, 2005, 2007)},
    ],
    "B": [
        {"event_id": 1, "truth": 1006, "system": 1007, "truetime": (1004, 1006, 1008)},
        # truth 2049 and estimate 2051: one 100 ms window with offset 0 ([2000, 2100)),
        # two with offset 50 ([1950, 2050) vs [2050, 2150)) → wrong only in run 2
        {"event_id": 2, "truth": 2049, "system": 2051, "truetime": (2047, 2049, 2051)},
    ],
}


def two_runs(tmp: Path) -> list[Path]:
    out = []
    for i, off in enumerate((0, 50)):
        res = write_run(
            tmp / f"run{i}", SENDS, RECEIPTS, window_sizes_ms=[100], window_offset_ms=off
        )
        analyze(res, make_figures=False)
        out.append(res.root)
    return out


def test_compare_known_answers(tmp_path: Path) -> None:
    doc = compare(two_runs(tmp_path))
    assert doc["varying_parameters"] == ["analysis.window_offset_ms"]
    assert doc["window_ms"] == 100
    r0, r1 = (r["sources"]["system"] for r in doc["runs"])
    # causality: 1 violation (A's e1) among 4 decided receipts, in both runs
    for r in (r0, r1):
        assert (r["causality_violation_rate"]["k"], r["causality_violation_rate"]["n"]) == (1, 4)
    assert (r0["window_wrong_rate"]["k"], r0["window_wrong_rate"]["n"]) == (0, 4)
    assert (r1["window_wrong_rate"]["k"], r1["window_wrong_rate"]["n"]) == (1, 4)
    assert r0["coverage"] is None  # a point source has no bounds
    # truetime bounds all cover truth (each interval is truth ± 2 ms)
    cov = doc["runs"][0]["sources"]["truetime"]["coverage"]
    assert (cov["k"], cov["n"]) == (4, 4)
    assert [r["varying"] for r in doc["runs"]] == [
        {"analysis.window_offset_ms": 0},
        {"analysis.window_offset_ms": 50},
    ]
    table = format_table(doc)
    assert "analysis.window_offset_ms=50" in table
    assert "25.00 [" in table  # 1/4 in percent


def test_compare_cli_figure_json_and_errors(tmp_path: Path) -> None:
    runs = [str(p) for p in two_runs(tmp_path)]
    fig, js = tmp_path / "c.png", tmp_path / "c.json"
    r = CliRunner().invoke(cli, ["compare", *runs, "--out", str(fig), "--json", str(js)])
    assert r.exit_code == 0, r.output
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(js.read_text())["runs"][1]["varying"] == {"analysis.window_offset_ms": 50}
    r = CliRunner().invoke(cli, ["compare", *runs, "--json", "-", "--no-figure"])
    assert r.exit_code == 0 and json.loads(r.output)["compare_version"] == 2
    (tmp_path / "empty").mkdir()
    r = CliRunner().invoke(cli, ["compare", runs[0], str(tmp_path / "empty"), "--no-figure"])
    assert r.exit_code == 2 and "no stats.json" in r.output
    r = CliRunner().invoke(cli, ["compare", *runs, "--window", "50", "--no-figure"])
    assert r.exit_code == 2 and "window size 50 ms" in r.output


def test_summary_table_bounded_columns(tmp_path: Path) -> None:
    from skewlab.cli.common import summary_table

    res = write_run(tmp_path / "r", SENDS, RECEIPTS, window_sizes_ms=[100])
    lines = summary_table(analyze(res, make_figures=False)).splitlines()
    row = {tuple(ln.split()[:2]): ln.split() for ln in lines[2:]}
    # A's truetime intervals cover truth in 2 of 2 receipts; both are provably after their
    # send (send latest 1002 < 1003 and 2002 < 2003), so 0 of 2 causality decisions ambiguous
    assert row[("A", "truetime")][-2:] == ["100.00", "0.00"]
    assert row[("A", "system")][-2:] == ["—", "—"]  # a point source: not applicable
    assert row[("A", "system")][4] == "1/2"  # the existing causality column is unchanged
