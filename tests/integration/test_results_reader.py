"""Damaged results folders (issue 20, item 5): one reader checks every trace part and each
node's counts against its rows before anything reads them. `analyze` and `export` refuse a
damaged folder in one line naming the file (exit 2); `export` leaves no partial csv/; a failed
re-analysis removes the stale stats.json, so `compare` cannot use it."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from skewlab.cli import cli
from skewlab.results import ResultsError, open_results
from skewlab.trace import TraceError, check_part, read_part


@pytest.fixture(scope="module")
def analysed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simulated run (120 events, 50 rows per part: 3 events parts per node), analysed."""
    base = tmp_path_factory.mktemp("reader")
    cfg = base / "exp.toml"
    cfg.write_text("[workload]\nevents = 120\n[run]\nbatch_rows = 50\n")
    r = CliRunner().invoke(cli, ["simulate", str(cfg), "-o", str(base / "out"), "-q",
                                 "--no-figures"])  # fmt: skip
    assert r.exit_code == 0, r.output
    (root,) = (base / "out").iterdir()
    assert (root / "stats.json").exists()
    return root


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / src.name
    shutil.copytree(src, dst)
    return dst


def _truncate(p: Path) -> None:
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])


def _empty(p: Path) -> None:
    p.write_bytes(b"")


def _corrupt(p: Path) -> None:
    data = bytearray(p.read_bytes())
    mid = len(data) // 3
    data[mid : mid + 64] = b"\xff" * 64
    p.write_bytes(bytes(data))


def _one_line_error(r: Result, *names: str) -> str:
    assert r.exit_code == 2, (r.exit_code, r.output)
    assert isinstance(r.exception, SystemExit)
    err = r.stderr.strip()
    assert err.startswith("skewlab: error:") and len(err.splitlines()) == 1, err
    for n in names:
        assert n in err, err
    return err


@pytest.mark.parametrize("damage", [_truncate, _empty, _corrupt])
def test_damaged_part_is_named_by_analyze_and_export(
    analysed: Path, tmp_path: Path, damage: Callable[[Path], None]
) -> None:
    d = _copy(analysed, tmp_path)
    part = d / "traces" / "B" / "events-000001.parquet"
    damage(part)
    r = CliRunner().invoke(cli, ["analyze", str(d), "--no-figures"])
    _one_line_error(r, str(part))
    assert not (d / "stats.json").exists()  # the stale analysis is gone
    r = CliRunner().invoke(cli, ["export", str(d), "--csv"])
    _one_line_error(r, str(part))
    assert not (d / "csv").exists()
    assert not [p for p in d.iterdir() if p.name.startswith(".csv")]
    r = CliRunner().invoke(cli, ["compare", str(analysed), str(d), "--no-figure"])
    _one_line_error(r, "no stats.json")


def test_deleted_part_contradicts_the_counts(analysed: Path, tmp_path: Path) -> None:
    d = _copy(analysed, tmp_path)
    (d / "traces" / "C" / "events-000000.parquet").unlink()
    with pytest.raises(ResultsError, match="120 event rows in 3 part"):
        open_results(d)
    r = CliRunner().invoke(cli, ["analyze", str(d), "--no-figures"])
    _one_line_error(r, str(d / "traces" / "C" / "counts.json"), "holds 70 in 2")


def test_bad_json_and_missing_folder(analysed: Path, tmp_path: Path) -> None:
    d = _copy(analysed, tmp_path)
    (d / "traces" / "B" / "counts.json").write_text("{not json")
    r = CliRunner().invoke(cli, ["analyze", str(d), "--no-figures"])
    _one_line_error(r, str(d / "traces" / "B" / "counts.json"), "not valid JSON")
    r = CliRunner().invoke(cli, ["analyze", str(tmp_path / "nope")])
    _one_line_error(r, "no such results folder")
    r = CliRunner().invoke(cli, ["export", str(tmp_path), "--csv"])
    _one_line_error(r, "no spec.json")


def test_export_replaces_an_earlier_export_whole(analysed: Path, tmp_path: Path) -> None:
    d = _copy(analysed, tmp_path)
    (d / "csv" / "stale").mkdir(parents=True)
    r = CliRunner().invoke(cli, ["export", str(d), "--csv"])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (d / "csv").iterdir()) == ["B", "C", "coordinator"]
    assert (d / "csv" / "B" / "events.csv").read_text().count("\n") == 121


@pytest.mark.parametrize(("status", "says"), [("running", "is still running"),
                                              ("interrupted", "was interrupted")])  # fmt: skip
def test_analyze_says_when_the_run_did_not_complete(
    analysed: Path, tmp_path: Path, status: str, says: str
) -> None:
    """issue 20, item 9: `analyze` on a run still going (or whose launcher was killed) or cut
    short says so; a completed run gets no note."""
    d = _copy(analysed, tmp_path)
    r = CliRunner().invoke(cli, ["analyze", str(d), "--no-figures"])
    assert r.exit_code == 0 and "note" not in r.stderr
    meta = json.loads((d / "metadata.json").read_text())
    (d / "metadata.json").write_text(json.dumps({**meta, "status": status}))
    r = CliRunner().invoke(cli, ["analyze", str(d), "--no-figures"])
    assert r.exit_code == 0, r.output
    assert f"skewlab: note: {d}: it {says}" in r.stderr


def _damage_inside_pages(p: Path) -> None:
    """Overwrite 64 bytes inside the data pages where the footer still reads whole but reading
    the data fails (what only a full read finds)."""
    data = p.read_bytes()
    for at in range(len(data) // 10, len(data) * 9 // 10, 97):
        d = bytearray(data)
        d[at : at + 64] = b"\xff" * 64
        p.write_bytes(bytes(d))
        check_part(p)  # the footer is intact: the up-front check passes
        try:
            read_part(p)
        except TraceError:
            return
    pytest.fail(f"no damage position breaks {p}'s data pages only")


def test_damage_inside_the_data_pages_is_named_after_the_read_fails(
    analysed: Path, tmp_path: Path
) -> None:
    """The analysis checks only the parts' footers up front and reads the data once; when that
    read fails it reads every part whole to name the damaged one (results.check_traces): the
    same one-line error as a damage the footer shows, and no stats.json."""
    d = _copy(analysed, tmp_path)
    part = d / "traces" / "C" / "events-000002.parquet"
    _damage_inside_pages(part)
    open_results(d, data=False)  # footers, versions, columns and counts all hold
    with pytest.raises(ResultsError, match="corrupt"):
        open_results(d)
    r = CliRunner().invoke(cli, ["analyze", str(d)])
    _one_line_error(r, str(part), "corrupt")
    assert not (d / "stats.json").exists()
