"""A run whose workers received nothing (issue 20, item 4: a worker whose port was taken, a
path that lost everything) still analyses: stats.json, every figure and the report are written
and the summary reports the loss, as docs/DEPLOYMENT.md promises for partial results."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner

from skewlab.cli import cli


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("zero") / "out"
    r = CliRunner().invoke(cli, ["simulate", "-n", "40", "-o", str(out), "-q", "--no-figures"])
    assert r.exit_code == 0, r.output
    (d,) = out.iterdir()
    return d


def test_workers_without_receipts_analyse(simulated: Path, tmp_path: Path) -> None:
    """Both kinds in one run (one analysis, one figure set: ~12 CPU-s each on a slow host):
    B ran and received nothing, C never started."""
    d = tmp_path / simulated.name
    shutil.copytree(simulated, d)
    node = d / "traces" / "B"  # the worker ran and received nothing: no parts, counts say so
    for p in node.glob("*.parquet"):
        if not p.name.startswith("ntp-"):
            p.unlink()
    c = json.loads((node / "counts.json").read_text())
    c.update(received=0, rows=0, parts=0, lost=c["coordinator_sent"])
    (node / "counts.json").write_text(json.dumps(c))
    shutil.rmtree(d / "traces" / "C")  # the worker never started (its port was taken)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a user would see any warning on stderr
        r = CliRunner().invoke(cli, ["analyze", str(d)])
    assert r.exit_code == 0, (r.output, r.exception)
    from skewlab.analysis.figures import FIGURES

    assert f"figures 1/{len(FIGURES)}: {FIGURES[0]}" in r.stderr  # progress while drawing
    stats = json.loads((d / "stats.json").read_text())
    assert {w: s["accounting"]["received"] for w, s in stats["workers"].items()} == {
        "B": 0, "C": 0
    }  # fmt: skip
    assert (d / "report.md").exists() and (d / "report.html").exists()
    assert len(stats["figures"]) == 2 * len(FIGURES)  # every figure, PNG and SVG
    assert all((d / f).exists() for f in stats["figures"])
