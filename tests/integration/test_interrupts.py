"""SIGINT and SIGTERM end every long-running command the same way (issue 20, item 7): the work
stops, what was written is kept and marked ``interrupted``, one line on stderr, exit 128 +
signal (130, 143), and no process the command started is left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import skewlab_cmd


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (from /proc/<pid>/task/*/children)."""
    out: set[int] = set()
    todo = [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                kids = (task / "children").read_text().split()
            except OSError:
                continue
            for k in map(int, kids):
                if k not in out:
                    out.add(k)
                    todo.append(k)
    return out


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(skewlab_cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, stdin=subprocess.DEVNULL)  # fmt: skip


def _wait_for(cond: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def _interrupt(proc: subprocess.Popen[str], sig: int, within_s: float) -> tuple[str, set[int]]:
    """Send ``sig``; the command must end within ``within_s``; return (stderr, its children)."""
    kids = _descendants(proc.pid)
    t0 = time.monotonic()
    os.kill(proc.pid, sig)
    try:
        _, err = proc.communicate(timeout=within_s)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert time.monotonic() - t0 < within_s
    return err, kids


def _check_line(err: str, sig: int, code: int) -> None:
    lines = [x for x in err.strip().splitlines() if x.startswith("skewlab:")]
    assert lines and lines[-1].startswith(f"skewlab: error: interrupted by {sig.name}"), err
    assert "Traceback" not in err and "Aborted" not in err, err


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_simulate_interrupted(tmp_path: Path, sig: signal.Signals, code: int) -> None:
    out = tmp_path / "out"
    proc = _start("simulate", "-n", "40000", "-j", "2", "-o", str(out), "-q", "--no-figures")

    def running() -> bool:
        m = list(out.glob("*/metadata.json"))
        return bool(m) and len(_descendants(proc.pid)) >= 2  # the worker pool is up

    _wait_for(running)
    err, kids = _interrupt(proc, sig, 20)
    assert proc.returncode == code, err
    _check_line(err, sig, code)
    meta = json.loads(next(out.glob("*/metadata.json")).read_text())
    assert meta["status"] == "interrupted"
    assert str(next(out.glob("*"))) in err
    _wait_for(lambda: not any(_alive(k) for k in kids), 10)


def test_sweep_stops_at_once_on_sigterm(tmp_path: Path) -> None:
    f = tmp_path / "sweep.toml"
    f.write_text('name = "long"\n[set]\n"workload.events" = 40000\n'
                 '[grid]\n"ntp.poll_s" = [1, 2, 4, 8]\n')  # fmt: skip
    out = tmp_path / "out"
    proc = _start("sweep", str(f), "-o", str(out), "-j", "2", "-q")
    root = out / "long"
    _wait_for(lambda: len(list(root.glob("cell-*/run/metadata.json"))) >= 2)
    err, kids = _interrupt(proc, signal.SIGTERM, 20)
    assert proc.returncode == 143, err
    _check_line(err, signal.SIGTERM, 143)
    assert "0 cell(s) completed" in err and "resumes" in err
    assert not list(root.glob("cell-*/completed"))
    for m in root.glob("cell-*/run/metadata.json"):
        assert json.loads(m.read_text())["status"] == "interrupted"
    _wait_for(lambda: not any(_alive(k) for k in kids), 10)


def test_validate_interrupted_during_its_real_run(tmp_path: Path) -> None:
    cfg = tmp_path / "exp.toml"
    cfg.write_text(
        "[workload]\nevents = 2000\ninterval_ms = 5\n[run]\nwarmup_s = 0\nbatch_rows = 50\n"
    )
    out = tmp_path / "out"
    proc = _start("validate", str(cfg), "-o", str(out), "-q")

    _wait_for(lambda: bool(list(out.rglob("traces/coordinator/events-*"))))  # 50 sends
    err, kids = _interrupt(proc, signal.SIGTERM, 20)
    assert proc.returncode == 143, err
    _check_line(err, signal.SIGTERM, 143)
    assert str(out) in err
    metas = [json.loads(m.read_text()) for m in out.rglob("metadata.json")]
    assert metas and all(m["status"] == "interrupted" for m in metas)
    _wait_for(lambda: not any(_alive(k) for k in kids), 10)
