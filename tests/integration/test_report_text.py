"""What report.md says on what `simulate` writes (issue 20, items 9, 10, 12): a run cut short
says so first; commit-wait cells of sources without refinement are not 'n/a ms, narrower —
(0/0)'; METHODOLOGY.md is not linked as if it were in the results folder."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from skewlab.analysis import report
from skewlab.analysis.stats_types import FIGURES
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


def test_report_without_figures_and_with_the_drawn_ones(tmp_path: Path) -> None:
    """`--no-figures` still writes report.md and report.html (every table, no figure); a
    report shows exactly the figures stats.json lists as drawn."""
    r = CliRunner().invoke(cli, ["simulate", "-n", "30", "-o", str(tmp_path), "-q",
                                 "--no-figures"])  # fmt: skip
    assert r.exit_code == 0, r.output
    (d,) = tmp_path.iterdir()
    stats = json.loads((d / "stats.json").read_text())
    assert stats["figures"] == [] and stats["reports"] == ["report.md", "report.html"]
    md, page = (d / "report.md").read_text(), (d / "report.html").read_text()
    assert "## Causality" in md and "![" not in md
    assert md.splitlines()[2] == ("No figures: this analysis drew none (`--no-figures`); "
                                  "`skewlab analyze` of this folder draws them.")  # fmt: skip
    assert "<table>" in page and "<img" not in page
    stats["figures"] = ["figures/commit_wait.png", "figures/commit_wait.svg"]
    bl = report.blocks(stats)
    assert [b.path for b in bl if isinstance(b, report.Fig)] == ["figures/commit_wait.png"]
    assert "No figures" not in report.to_markdown(bl)


def test_analysis_without_figures_removes_an_earlier_set(tmp_path: Path) -> None:
    """Figures beside a stats.json they were not drawn from would show other numbers:
    `analyze --no-figures` removes the set an earlier analysis drew (by name, PNG and SVG) and
    leaves any other file; the folder goes when nothing else is in it. (Files stand in for a
    drawn set: a real one costs seconds, and removal goes by name.)"""
    r = CliRunner().invoke(cli, ["simulate", "-n", "30", "-o", str(tmp_path), "-q",
                                 "--no-figures"])  # fmt: skip
    assert r.exit_code == 0, r.output
    (d,) = tmp_path.iterdir()
    figs = d / "figures"
    assert not figs.exists()
    for first in (True, False):
        figs.mkdir()
        drawn = [figs / f"{n}.{e}" for n in FIGURES for e in ("png", "svg")]
        for f in drawn:
            f.write_bytes(b"old")
        mine = figs / "notes.txt"
        if first:
            mine.write_text("the user's")
        r = CliRunner().invoke(cli, ["analyze", str(d), "--no-figures"])
        assert r.exit_code == 0, r.output
        assert not any(f.exists() for f in drawn)
        if first:
            assert mine.read_text() == "the user's"
            mine.unlink()
            figs.rmdir()
        else:
            assert not figs.exists()
