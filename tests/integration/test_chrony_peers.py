"""skewlab's NTP against a real peer: chronyd on loopback, started and stopped here by PID.

1. chronyd as a local stratum-1 server: skewlab's client and ntplib must agree on its offset.
2. chronyd as a client of skewlab's embedded server: chrony must select it as a source.
chronyd always runs with -x (never touches the system clock), binds only 127.0.0.1, has no
sources but loopback ones, and exits by itself after a bounded time (-t) if we failed to stop it.
"""

from __future__ import annotations

import os
import pwd
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from skewlab.clocks.oscillator import NodeClock, Oscillator
from skewlab.ntp.client import NtpClient, NtpError
from skewlab.ntp.sample import NtpSample
from skewlab.ntp.server import NtpServer
from tests.conftest import require_command

ntplib = pytest.importorskip("ntplib")

CHRONYD_LIFETIME_S = 90  # chronyd exits by itself after this (-t), whatever happens here
BURST = 8


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Chronyd:
    """One chronyd process with its own config, pid file and sockets in a temp folder."""

    def __init__(self, workdir: Path, directives: list[str]) -> None:
        self.chronyd = require_command("chronyd", "the real-peer NTP tests need chrony")
        self.chronyc = require_command("chronyc", "the real-peer NTP tests need chrony")
        self.dir = workdir
        sockdir = workdir / "sock"
        sockdir.mkdir(mode=0o700)  # chronyd refuses a command socket in a shared folder
        self.cmdport = free_port()
        conf = [
            *directives,
            f"cmdport {self.cmdport}",
            "bindcmdaddress 127.0.0.1",
            f"bindcmdaddress {sockdir / 'chronyd.sock'}",
            f"pidfile {workdir / 'chronyd.pid'}",
            f"driftfile {workdir / 'drift'}",
            f"logdir {workdir}",
        ]
        self.conf = workdir / "chrony.conf"
        self.conf.write_text("\n".join(conf) + "\n")
        self.log = workdir / "chronyd.log"
        user = pwd.getpwuid(os.geteuid()).pw_name
        args = [self.chronyd, "-x", "-d", "-f", str(self.conf), "-u", user]
        args += ["-t", str(CHRONYD_LIFETIME_S)]
        if os.geteuid() != 0:
            args.append("-U")
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )

    def chronyc_out(self, *cmd: str) -> str:
        p = subprocess.run(
            [self.chronyc, "-h", "127.0.0.1", "-p", str(self.cmdport), "-n", *cmd],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return p.stdout + p.stderr

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)

    def describe(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def chrony_server(tmp_path: Path) -> Iterator[tuple[Chronyd, int]]:
    port = free_port()
    d = Chronyd(
        tmp_path,
        [
            f"port {port}",
            "bindaddress 127.0.0.1",
            "local stratum 1",
            "allow 127.0.0.1",
        ],
    )
    try:
        yield d, port
    finally:
        d.stop()


def _wait_answer(client: NtpClient, chrony: Chronyd, within_s: float = 15) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        assert chrony.proc.poll() is None, "chronyd exited:\n" + chrony.describe()
        try:
            client.exchange()
            return
        except NtpError:
            time.sleep(0.2)
    pytest.fail(f"chronyd never answered within {within_s} s:\n{chrony.describe()}")


def _ntplib_best(port: int, n: int) -> tuple[float, float]:
    """(offset, delay) in seconds of ntplib's minimum-delay reply among n."""
    c = ntplib.NTPClient()
    stats = [c.request("127.0.0.1", port=port, version=4, timeout=2) for _ in range(n)]
    best = min(stats, key=lambda s: s.delay)
    return best.offset, best.delay


def test_skewlab_client_and_ntplib_agree_on_chronyd(chrony_server: tuple[Chronyd, int]) -> None:
    chrony, port = chrony_server
    with NtpClient("127.0.0.1", port, timeout_s=1.0) as client:
        _wait_answer(client, chrony)
        ours = client.best_of(BURST)
        theirs_offset_s, theirs_delay_s = _ntplib_best(port, BURST)
    # Both measure chronyd's served time against this host's clock.
    diff_ns = ours.offset_ns - round(theirs_offset_s * 1e9)
    assert abs(diff_ns) <= 200_000, (ours, theirs_offset_s, theirs_delay_s)
    assert ours.stratum == 1 and ours.leap == 0
    # chronyd serves the host clock: the truth (host clock = our local clock here) is inside.
    assert ours.earliest_offset_ns <= 0 <= ours.latest_offset_ns, ours


def test_skewlab_client_measures_emulated_offset_against_chronyd(
    chrony_server: tuple[Chronyd, int],
) -> None:
    """A node 5 ms ahead sees θ ≈ −5 ms from chronyd, and ntplib's θ shifted by −5 ms agrees."""
    chrony, port = chrony_server
    ahead_ns = 5_000_000
    clock = NodeClock(Oscillator(offset_ns=ahead_ns))
    with NtpClient("127.0.0.1", port, clock=clock, timeout_s=1.0) as client:
        _wait_answer(client, chrony)
        ours: NtpSample = client.best_of(BURST)
        theirs_offset_s, _ = _ntplib_best(port, BURST)
    expected_ns = round(theirs_offset_s * 1e9) - ahead_ns
    assert abs(ours.offset_ns - expected_ns) <= 200_000, (ours.offset_ns, expected_ns)
    assert ours.earliest_offset_ns <= -ahead_ns <= ours.latest_offset_ns


def test_chronyd_selects_skewlab_server(tmp_path: Path) -> None:
    with NtpServer("127.0.0.1", 0) as server:
        chrony = Chronyd(
            tmp_path,
            [
                f"server 127.0.0.1 port {server.port} minpoll -4 maxpoll -4 iburst",
                "port 0",  # client only: no NTP server socket
            ],
        )
        try:
            deadline = time.monotonic() + 30
            line = ""
            while time.monotonic() < deadline:
                assert chrony.proc.poll() is None, "chronyd exited:\n" + chrony.describe()
                out = chrony.chronyc_out("sources")
                m = re.search(r"^(\^.)\s+127\.0\.0\.1\s.*$", out, re.M)
                line = m.group(0) if m else out
                if m and m.group(1) in ("^*", "^+"):
                    break
                time.sleep(0.5)
            else:
                pytest.fail(f"chronyd did not select skewlab's server; last sources:\n{line}\n"
                            f"log:\n{chrony.describe()}")  # fmt: skip
        finally:
            chrony.stop()
        answered = server.counters["answered"]
    assert answered >= 1
    assert server.counters["rejected_truncated"] == 0
