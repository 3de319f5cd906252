"""Sweep cells are keyed by their whole resolved spec and mode: a completed cell is reused only
when nothing it depends on changed (issue 20, item 2). The cell's run is replaced by a stub that
records what it was asked to run, so the test runs in milliseconds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from skewlab.sim import sweep
from skewlab.spec import ExperimentSpec, SpecError

SWEEP = """
name = "keys"
[set]
"workload.events" = {events}
[grid]
"ntp.poll_s" = [1, 4]
"""


@pytest.fixture
def ran(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, bool]]:
    """Every stubbed cell run: (its events, real?)."""
    calls: list[tuple[int, bool]] = []

    def fake(spec: ExperimentSpec, d: Path, real: bool, figures: bool) -> dict[str, Any]:
        calls.append((spec.workload.events, real))
        return {"coordinator": {"sent": spec.workload.events}, "workers": {}, "summary": {}}

    monkeypatch.setattr(sweep, "execute_cell", fake)
    monkeypatch.setattr(sweep, "sweep_figures", lambda *a: [])
    return calls


def _sweep(tmp_path: Path, events: int, real: bool = False) -> dict[str, Any]:
    f = tmp_path / "sweep.toml"
    f.write_text(SWEEP.format(events=events))
    return sweep.run_sweep(f, tmp_path / "out", jobs=1, real=real)


def test_changed_fixed_setting_reruns_every_cell(tmp_path: Path, ran: list[Any]) -> None:
    assert _sweep(tmp_path, 200)["ran"] == 2
    again = _sweep(tmp_path, 200)
    assert (again["ran"], again["skipped"]) == (0, 2)
    changed = _sweep(tmp_path, 250)
    assert (changed["ran"], changed["skipped"]) == (2, 0)
    assert ran[-2:] == [(250, False), (250, False)]


def test_real_mode_does_not_reuse_simulated_cells(tmp_path: Path, ran: list[Any]) -> None:
    _sweep(tmp_path, 200)
    real = _sweep(tmp_path, 200, real=True)
    assert (real["ran"], real["skipped"]) == (2, 0)
    assert ran[-2:] == [(200, True), (200, True)]
    cell = json.loads(next((tmp_path / "out" / "keys").glob("cell-000-*/cell.json")).read_text())
    assert cell["mode"] in {"real", "simulate"} and len(cell["key"]) == 64


def test_marker_without_matching_key_is_not_reused(tmp_path: Path, ran: list[Any]) -> None:
    _sweep(tmp_path, 200)
    cells = sorted((tmp_path / "out" / "keys").glob("cell-*"))
    doc = json.loads((cells[0] / "cell.json").read_text())
    (cells[0] / "cell.json").write_text(json.dumps({**doc, "key": "0" * 64}))
    again = _sweep(tmp_path, 200)
    assert (again["ran"], again["skipped"]) == (1, 1)


def test_key_covers_every_setting_and_the_mode() -> None:
    a = ExperimentSpec()
    b = ExperimentSpec()
    b.workload.events += 1
    assert sweep.cell_key(a, False) == sweep.cell_key(ExperimentSpec(), False)
    assert sweep.cell_key(a, False) != sweep.cell_key(b, False)
    assert sweep.cell_key(a, False) != sweep.cell_key(a, True)


def test_sweep_name_is_checked_before_it_becomes_a_path(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text('name = "../../outside"\n[grid]\n"ntp.poll_s" = [1]\n')
    with pytest.raises(SpecError, match="is not a usable folder name"):
        sweep.run_sweep(f, tmp_path / "out", jobs=1)
    assert not (tmp_path / "out").exists()


def test_table_shows_every_source_in_plain_units() -> None:
    """issue 20, item 12: no source dropped for width; ns printed as ms, not 2.01e+07."""
    row: dict[str, Any] = {"param:ntp.poll_s": 4}
    for s in ("system", "ntp", "truetime", "clockbound", "skewlab"):
        row |= {f"{s}.mae_ns": 20_100_000, f"{s}.coverage": 0.5 if s != "system" else None,
                f"{s}.received_fraction": 1.0}  # fmt: skip
    table = sweep.format_table([row])
    lines = table.splitlines()
    assert len(lines) == 1 + 5
    assert all(s in table for s in ("truetime", "clockbound", "skewlab"))
    assert "20.100" in table and "e+" not in table and "50.00" in table


def test_figure_of_a_two_value_grid(tmp_path: Path) -> None:
    """sweep_figures draws one point per grid value for every source and metric."""
    rows = [{"param:ntp.poll_s": x, "system.mae_ns": 1e6 * x, "skewlab.coverage": 0.9}
            for x in (1, 4, 8)]  # fmt: skip
    (f,) = sweep.sweep_figures(tmp_path, rows, ["ntp.poll_s"])
    assert (tmp_path / f).read_bytes()[:4] == b"\x89PNG"
