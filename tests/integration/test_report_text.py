"""What report.md says on what `simulate` writes (issue 20, items 9, 10, 12): a run cut short
says so first; commit-wait cells of sources without refinement are not 'n/a ms, narrower —
(0/0)'; METHODOLOGY.md is not linked as if it were in the results folder."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from skewlab.analysis import report
from skewlab.cli import cli


def test_report_text(tmp_path: Path) -> None:
    r = CliRunner().invoke(cli, ["simulate", "-n", "40", "-o", str(tmp_path), "-q",
                                 "--no-figures"])  # fmt: skip
    assert r.exit_code == 0, r.output
    (d,) = tmp_path.iterdir()
    stats = json.loads((d / "stats.json").read_text())
    text = report.to_markdown(report.blocks(stats))
    assert "Incomplete run" not in text
    assert "narrower — (0/0)" not in text and "n/a ms" not in text
    assert "in skewlab's sources (not in this results folder)" in text
    stats["parameters"]["workload.events"] = 1000  # as if stopped after 40 of 1000
    text = report.to_markdown(report.blocks(stats))
    assert "**Incomplete run: the coordinator sent 40 of the 1000 planned events**" in text
