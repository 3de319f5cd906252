"""`skewlab sweep`: a 3 rates × 2 poll intervals grid in simulation, its table and figures, and
resumption (completed cells are not rerun)."""

from __future__ import annotations

import csv
from pathlib import Path

from tests.conftest import run_skewlab

SWEEP = """
name = "rates-polls"
[set]
"workload.events" = 80
"run.warmup_s" = 0.5
[grid]
"workload.interval_ms" = [5, 20, 50]
"ntp.poll_s" = [1, 4]
"""


def test_small_sweep_table_figures_and_resume(tmp_path: Path) -> None:
    f = tmp_path / "sweep.toml"
    f.write_text(SWEEP)
    out = tmp_path / "out"
    p = run_skewlab("sweep", str(f), "-o", str(out), "-j", "2", timeout=300)
    assert p.returncode == 0, p.stderr
    root = out / "rates-polls"
    rows = list(csv.DictReader((root / "sweep.csv").open()))
    got = {(float(r["param:workload.interval_ms"]), float(r["param:ntp.poll_s"])) for r in rows}
    assert got == {(i, q) for i in (5.0, 20.0, 50.0) for q in (1.0, 4.0)}
    assert all(float(r["system.received_fraction"]) == 1.0 for r in rows)  # loopback: no loss
    assert (root / "sweep.parquet").stat().st_size > 0
    for name in ("vs_workload.interval_ms.png", "vs_ntp.poll_s.png"):
        assert (root / "figures" / name).read_bytes()[:4] == b"\x89PNG"
    cells = sorted(root.glob("cell-*"))
    assert len(cells) == 6 and all((c / "completed").exists() for c in cells)
    assert "interval_ms" in p.stdout and "6 cell(s) run, 0 reused" in p.stdout
    # resume: drop one cell's marker; only that cell runs again (without figures: the table is
    # rewritten, the figures of the first pass are gone)
    (cells[2] / "completed").unlink()
    stamp = {c: (c / "row.json").stat().st_mtime_ns for c in cells}
    table = (root / "sweep.csv").stat().st_mtime_ns
    p = run_skewlab("sweep", str(f), "-o", str(out), "-j", "1", "--no-figures", timeout=300)
    assert p.returncode == 0, p.stderr
    assert "1 cell(s) run, 5 reused; table in " in p.stdout
    assert (root / "sweep.csv").stat().st_mtime_ns != table
    assert list((root / "figures").glob("*.png")) == []
    changed = [c for c in cells if (c / "row.json").stat().st_mtime_ns != stamp[c]]
    assert changed == [cells[2]]


def test_sweep_errors_name_the_key(tmp_path: Path) -> None:
    f = tmp_path / "bad.toml"
    f.write_text('[grid]\n"nodes[7].drift_ppm" = [1, 2]\n')
    p = run_skewlab("sweep", str(f), "-o", str(tmp_path))
    assert p.returncode == 2 and p.stderr.startswith("skewlab: error: ")
    assert "nodes[7].drift_ppm" in p.stderr
