"""`skewlab simulate` on the command line: a results folder `skewlab analyze` reads unchanged,
and a one-line error for a spec that cannot be simulated."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_skewlab


def test_simulate_then_analyze(tmp_path: Path) -> None:
    p = run_skewlab("simulate", "-n", "60", "--seed", "5", "-o", str(tmp_path), "--no-figures")
    assert p.returncode == 0, p.stderr
    (root,) = [d for d in tmp_path.iterdir() if d.is_dir()]
    meta = json.loads((root / "metadata.json").read_text())
    assert meta["launcher"] == "simulate" and meta["status"] == "completed"
    first = json.loads((root / "stats.json").read_text())["summary"]
    p = run_skewlab("analyze", str(root), "--no-figures")
    assert p.returncode == 0, p.stderr
    again = json.loads((root / "stats.json").read_text())["summary"]
    assert again == first and first["skewlab"]["coverage"]["n"] == 2 * 60


def test_unsimulable_source_is_a_one_line_error(tmp_path: Path) -> None:
    cfg = tmp_path / "x.toml"
    cfg.write_text('sources = ["system", "chrony"]\n')
    p = run_skewlab("simulate", str(cfg), "-o", str(tmp_path / "out"))
    assert p.returncode == 2
    assert p.stderr.startswith("skewlab: error: ") and "chrony" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
