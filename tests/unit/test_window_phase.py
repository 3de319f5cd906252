"""Window results no longer depend on the start instant's phase (issue 20, item 11).

Events on a 10 ms grid, a clock 3 ms fast at every event, 50 ms windows: on one fixed grid the
wrong-window rate is 0 % when the events sit 0 ms past a boundary and 20 % when they sit 8 ms
past it (the events at 48 ms cross into the next window) — a property of the start instant, not
of the clock. With the default per-event phase (seeded, recorded in stats.json) both runs give
the clock's own rate, 3/50 = 6 %."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from skewlab.analysis import analyze
from skewlab.analysis.metrics import window_phase_ns
from tests.unit.test_analysis_metrics import write_run

N = 1000


def _wrong_rate(tmp_path: Path, start_ms: int, phase: str) -> tuple[float, dict[str, Any]]:
    sends = [{"event_id": i, "truth": start_ms + 10 * i - 1, "system": start_ms + 10 * i - 1}
             for i in range(N)]  # fmt: skip
    rec = [{"event_id": i, "truth": start_ms + 10 * i, "system": start_ms + 10 * i + 3}
           for i in range(N)]  # fmt: skip
    res = write_run(tmp_path / f"{start_ms}-{phase}", sends, {"A": rec, "B": rec},
                    sources=["system"], window_sizes_ms=[50], window_phase=phase)  # fmt: skip
    st = analyze(res, make_figures=False)
    w = st["workers"]["A"]["sources"]["system"]["windows"]["50"]
    return w["wrong"] / w["decided"], st


def test_fixed_grid_rate_is_the_start_phase(tmp_path: Path) -> None:
    assert _wrong_rate(tmp_path, 1_000_000, "fixed")[0] == 0.0
    assert _wrong_rate(tmp_path, 1_000_008, "fixed")[0] == 0.2


def test_per_event_phase_gives_the_clocks_rate_whatever_the_start(tmp_path: Path) -> None:
    for start in (1_000_000, 1_000_008):
        r, st = _wrong_rate(tmp_path, start, "per_event")
        assert abs(r - 0.06) < 0.01, (start, r)
        assert st["settings"]["window_phase"] == "per_event"
        assert st["settings"]["window_phase_seed"] == 3  # the spec's seed


def test_phase_is_seeded_spread_and_shared() -> None:
    ids = pl.DataFrame({"event_id": pl.Series(range(10_000), dtype=pl.UInt64)})
    ph = ids.select(window_phase_ns(1, 1_000_000_000)).to_series()
    assert ph.min() >= 0 and ph.max() < 1_000_000_000
    counts = (ph // 100_000_000).value_counts()["count"]  # ten deciles, evenly filled
    assert counts.len() == 10 and counts.min() >= 950
    again = ids.select(window_phase_ns(1, 1_000_000_000)).to_series()
    assert again.equals(ph)  # one value per event id: every worker and source sees the same
    assert not ids.select(window_phase_ns(2, 1_000_000_000)).to_series().equals(ph)
