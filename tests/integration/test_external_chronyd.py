"""chrony source against a real chronyd (-x: never touches the clock) synced to a loopback server.

chronyd gets only a loopback NTP server (skewlab's embedded one), no NTP or UDP command port of
its own (port 0, cmdport 0) and a command socket in the test's folder; it is stopped by PID.
"""

from __future__ import annotations

import math
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import require_command


@pytest.fixture
def chronyd(tmp_path: Path):
    exe = require_command("chronyd", "the chrony source test needs a real chronyd")
    require_command("chronyc", "the chrony source reads chronyc's tracking report")
    from skewlab.ntp.server import NtpServer

    run = tmp_path / "chrony"
    run.mkdir(mode=0o700)
    server = NtpServer("127.0.0.1", 0).start()
    sock = run / "chronyd.sock"
    conf = run / "chrony.conf"
    conf.write_text(
        f"server 127.0.0.1 port {server.port} iburst minpoll -4 maxpoll -4\n"
        "port 0\ncmdport 0\n"
        f"bindcmdaddress {sock}\npidfile {run / 'chronyd.pid'}\ndriftfile {run / 'drift'}\n"
    )
    cmd = [exe, "-x", "-d", "-f", str(conf)]
    if os.geteuid() == 0:
        cmd[1:1] = ["-u", "root"]
    log = open(run / "chronyd.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        yield str(sock)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        server.stop()


def _wait_synced(sock: str, timeout_s: float = 30.0):
    from skewlab.clocks.external.chrony import ChronyError, query_tracking

    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            tr = query_tracking(host=sock)
            if tr.leap_status == "Normal" and tr.ref_name == "127.0.0.1":
                return tr
            last = f"{tr.leap_status} / {tr.ref_name}"
        except ChronyError as e:
            last = str(e)
        time.sleep(0.5)
    pytest.fail(f"chronyd did not synchronise to the loopback server in {timeout_s} s: {last}")


def test_chrony_bounds_from_tracking(chronyd: str) -> None:
    from skewlab.clocks.base import Status
    from skewlab.clocks.external import availability
    from skewlab.clocks.sources import SOURCES
    from skewlab.clocks.sync import SyncState

    _wait_synced(chronyd)
    ok, why = availability("chrony", {"host": chronyd})
    assert ok and "127.0.0.1" in why
    src = SOURCES["chrony"](SyncState(), host=chronyd, poll_s=0.5)
    try:
        assert src.poller.wait_first(10), src.poller.last_error
        tr = src.poller.latest
        t = time.time_ns()
        r = src.read(t)
    finally:
        src.close()
    assert r.status is Status.SYNCHRONIZED
    assert r.estimate_ns == t + round(tr.system_time_s * 1e9)
    growth = (t - tr.taken_ns) * (tr.skew_ppm + abs(tr.residual_freq_ppm) + 1.0) * 1e-6
    want = math.ceil((tr.root_delay_s / 2 + tr.root_dispersion_s) * 1e9 + growth)
    assert abs((r.latest_ns - r.estimate_ns) - want) <= 1
    # The server serves this very host clock, so the truth at the read is t itself.
    assert r.earliest_ns <= t <= r.latest_ns


def test_absent_chronyd_is_unavailable(tmp_path: Path) -> None:
    require_command("chronyc", "the check runs chronyc")
    from skewlab.clocks.external import availability

    ok, why = availability("chrony", {"host": str(tmp_path / "no.sock"), "timeout_s": 2})
    assert not ok and "chronyc failed" in why
