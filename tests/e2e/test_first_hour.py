"""A new user's first hour (issue 20, acceptance): every command, run as a user runs it (a
``skewlab`` process), on what ``skewlab run``, ``simulate``, ``sweep`` and ``import-legacy``
actually write, exits 0 and writes its files.

One real run is shared: the session's ``default_style_run`` (tests/conftest.py), copied so
nothing here rewrites the folder other tests read. ``validate`` (a second real run) is
tests/integration/test_sim_validate.py; ``clockd`` is tests/integration/test_external_clockd.py.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_skewlab, skewlab_cmd
from tests.unit.test_import_legacy import write_legacy


def _ok(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    p = run_skewlab(*args, timeout=timeout)
    assert p.returncode == 0, (args, p.stdout[-2000:], p.stderr[-2000:])
    assert "Traceback" not in p.stderr and "Warning" not in p.stderr, p.stderr
    return p


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("first-hour")


@pytest.fixture(scope="module")
def run_dir(default_style_run: tuple[subprocess.CompletedProcess[str], Path], base: Path) -> Path:
    """A copy of the session's real run (`skewlab run --config ... --events 60`)."""
    p, out = default_style_run
    assert p.returncode == 0, p.stderr
    (src,) = out.iterdir()
    dst = base / "run" / src.name
    shutil.copytree(src, dst)
    return dst


@pytest.fixture(scope="module")
def sim_dir(run_dir: Path, base: Path) -> Path:
    """`skewlab simulate` of the experiment the run recorded (its spec.json, as a user would)."""
    out = base / "sim"
    p = _ok(
        "simulate", str(run_dir / "spec.json"), "-n", "60", "-o", str(out), "-q", "--no-figures"
    )  # figures: test_analyze_rewrites_every_file
    (d,) = out.iterdir()
    assert str(d) in p.stdout
    return d


@pytest.fixture(scope="module")
def legacy_dir(base: Path) -> Path:
    """`skewlab import-legacy --analyze` of a folder in the original framework's format.
    No figures: an imported run's figure set is tests/unit/test_import_legacy.py's (one set is
    ~10 CPU-s)."""
    src = write_legacy(base / "legacy-src")
    out = base / "imported"
    p = _ok("import-legacy", str(src), "-o", str(out), "--name", "old", "--analyze",
            "--no-figures")  # fmt: skip
    assert f"imported: {out / 'old'}" in p.stdout
    return out / "old"


def test_analyze_rewrites_every_file(run_dir: Path) -> None:
    """`analyze --no-figures` of the recorded run rewrites stats.json and both reports, with
    every table and no figure. The figures of a real run are drawn by `run` itself (the same
    `analyse_results`): default_style_run's set, checked by tests/e2e/test_run.py and opened by
    tests/integration/test_report_html.py; a second set here cost ~8 CPU-s."""
    for f in ("stats.json", "report.md", "report.html"):
        (run_dir / f).unlink()
    shutil.rmtree(run_dir / "figures")
    p = _ok("analyze", str(run_dir), "--no-figures")
    assert "worker" in p.stdout and "skewlab" in p.stdout
    stats = json.loads((run_dir / "stats.json").read_text())
    assert stats["coordinator"]["sent"] == 60
    assert stats["figures"] == [] and not (run_dir / "figures").exists()
    assert stats["reports"] == ["report.md", "report.html"]
    md, page = (run_dir / "report.md").read_text(), (run_dir / "report.html").read_text()
    assert "## Readings vs truth" in md and "| source |" in md and "![" not in md  # no figure
    assert "<table>" in page and "<img" not in page


def test_export_writes_every_trace(run_dir: Path) -> None:
    p = _ok("export", str(run_dir), "--csv")
    files = [Path(x) for x in p.stdout.split()]
    assert run_dir / "csv" / "B" / "events.csv" in files
    stats = json.loads((run_dir / "stats.json").read_text())
    for w in ("B", "C"):
        with (run_dir / "csv" / w / "events.csv").open() as f:
            assert (
                sum(1 for _ in csv.DictReader(f)) == stats["workers"][w]["accounting"]["received"]
            )


def test_simulate_the_recorded_experiment(sim_dir: Path) -> None:
    stats = json.loads((sim_dir / "stats.json").read_text())
    assert stats["coordinator"]["sent"] == 60
    assert json.loads((sim_dir / "metadata.json").read_text())["status"] == "completed"


def test_sweep_over_the_recorded_experiment(run_dir: Path, base: Path) -> None:
    f = base / "sweep.toml"
    f.write_text(f'name = "polls"\nbase = "{run_dir / "spec.json"}"\n'
                 '[set]\n"workload.events" = 40\n[grid]\n"ntp.poll_s" = [1, 4]\n')  # fmt: skip
    out = base / "sweeps"
    p = _ok("sweep", str(f), "-o", str(out), "-j", "2", timeout=300)
    assert "2 cell(s) run, 0 reused" in p.stdout
    root = out / "polls"
    assert (root / "sweep.csv").exists() and (root / "sweep.parquet").exists()
    assert (root / "figures" / "vs_ntp.poll_s.png").exists()
    cells = sorted(root.glob("cell-*/run"))
    assert len(cells) == 2
    _ok("analyze", str(cells[0]), "--no-figures")  # resuming: test_sweep.py, test_sweep_cells.py


def test_import_legacy_then_analyze_and_export(legacy_dir: Path) -> None:
    stats = json.loads((legacy_dir / "stats.json").read_text())
    assert stats["imported"] is True
    _ok("export", str(legacy_dir), "--csv")


def test_compare_run_simulation_and_import(
    run_dir: Path, sim_dir: Path, legacy_dir: Path, base: Path
) -> None:
    fig, doc = base / "compare.png", base / "compare.json"
    dirs = [str(run_dir), str(sim_dir), str(legacy_dir)]
    p = _ok("compare", *dirs, "-o", str(fig), "--json", str(doc))
    png = fig.read_bytes()
    assert png[:4] == b"\x89PNG"
    # the figure keeps its 7.5-inch width: the imported run (no spec) differs from the others
    # in every key, and the legend once put them on one line, 20,691 px wide at 300 dpi
    width = int.from_bytes(png[16:20], "big")
    assert width <= 10 * 300, width
    assert len(json.loads(doc.read_text())["runs"]) == 3
    assert "figure:" in p.stdout


def test_deploy_preflight_on_the_recorded_experiment(run_dir: Path) -> None:
    p = _ok("deploy", str(run_dir / "spec.json"), "--launcher", "local", "--preflight-only")
    assert "every check passed" in p.stdout


def test_sources_and_ntp_tools() -> None:
    rows = json.loads(_ok("sources", "--json", "--wait", "0").stdout)
    assert {r["source"] for r in rows} >= {"system", "ntp", "skewlab"}
    server = subprocess.Popen(skewlab_cmd("ntp-server", "--port", "0"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert server.stdout is not None
        m = re.search(r"listening on (\S+)", server.stdout.readline())
        assert m, server.stderr
        q = _ok("ntp-query", "--json", "-n", "2", m.group(1))
        assert json.loads(q.stdout)["servers"][0]["verdict"] == "selected"
        os.kill(server.pid, signal.SIGINT)
        out, err = server.communicate(timeout=10)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert server.returncode == 0 and out.startswith("counters: "), err
