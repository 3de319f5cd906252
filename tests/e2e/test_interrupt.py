"""Ctrl-C or SIGTERM (what `timeout` and batch schedulers send) during a run: the launcher stops
every node it started, records `interrupted` and exits 130 or 143 with one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import skewlab_cmd
from tests.e2e.test_run import _pid_gone


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_everything(tmp_path: Path, sig: signal.Signals, code: int) -> None:
    cfg = tmp_path / "exp.toml"
    cfg.write_text("[workload]\nevents = 5000\ninterval_ms = 5\n"
                   "[run]\nwarmup_s = 0\nbatch_rows = 50\n")  # fmt: skip
    out = tmp_path / "results"
    proc = subprocess.Popen(
        skewlab_cmd("run", "--config", str(cfg), "--out", str(out)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    pids: dict[str, int] = {}
    try:
        deadline = time.monotonic() + 60
        sending = False  # the coordinator's first part file (50 sends) exists
        while time.monotonic() < deadline and not sending:
            for m in out.glob("*/metadata.json"):
                try:
                    pids = json.loads(m.read_text()).get("pids", {})
                except json.JSONDecodeError:
                    pass
            sending = bool(list(out.glob("*/traces/coordinator/events-*")))
            time.sleep(0.1)
        assert "coordinator" in pids and sending, "the run never reached the broadcast"
        os.kill(proc.pid, sig)
        t0 = time.monotonic()
        _, err = proc.communicate(timeout=30)
        stop_s = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == code, err
    assert err.strip().splitlines()[-1].startswith(f"skewlab: error: interrupted by {sig.name}")
    assert "Traceback" not in err and stop_s < 10, (stop_s, err)
    for name, pid in pids.items():
        assert _pid_gone(pid), f"{name} (pid {pid}) left running"
    meta = json.loads(next(out.glob("*/metadata.json")).read_text())
    starter = meta["node_starter_pid"]  # the process that forked the nodes (node/zygote.py)
    assert starter not in pids.values() and _pid_gone(starter), f"node starter {starter} left"
    assert meta["status"] == "interrupted"
