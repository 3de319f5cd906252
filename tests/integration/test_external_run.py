"""``skewlab run`` fails fast on an absent host clock service unless the source is optional."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_skewlab


def _config(tmp_path: Path, optional: bool) -> Path:
    cfg = {
        "name": "ext",
        "sources": ["system", "ntp", "chronotick"],
        "source_params": {
            "chronotick": {"path": str(tmp_path / "no_chronotick_shm"), "optional": optional}
        },
        "workload": {"events": 20, "interval_ms": 5},
        "run": {"warmup_s": 0},  # ready at the first NTP sample
    }
    p = tmp_path / "exp.json"
    p.write_text(json.dumps(cfg))
    return p


def test_run_fails_fast_with_the_reason(tmp_path: Path) -> None:
    out = tmp_path / "results"
    r = run_skewlab("run", "-c", str(_config(tmp_path, False)), "-o", str(out), "-q")
    assert r.returncode == 1
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("skewlab: error: clock source 'chronotick' is unavailable")
    assert "no ChronoTick segment" in line and "optional" in line
    assert not out.exists() or not any(out.iterdir())  # nothing was started or written


def test_optional_source_runs_and_records_no_value(tmp_path: Path) -> None:
    import polars as pl

    out = tmp_path / "results"
    r = run_skewlab("run", "-c", str(_config(tmp_path, True)), "-o", str(out), "-q",
                    "--no-figures")  # fmt: skip
    assert r.returncode == 0, r.stderr
    (root,) = list(out.iterdir())
    events = pl.read_parquet(sorted(root.glob("**/B/events*.parquet")) or
                             sorted(root.glob("**/B/**/*.parquet")))  # fmt: skip
    status_cols = [c for c in events.columns if c.startswith("chronotick") and "status" in c]
    assert status_cols, events.columns
    assert events.height > 0
    assert (events[status_cols[0]] == 0).all()  # UNSYNCHRONIZED: a status, never a value
    est = [c for c in events.columns if c.startswith("chronotick") and "est" in c]
    assert est and events[est[0]].null_count() == events.height
