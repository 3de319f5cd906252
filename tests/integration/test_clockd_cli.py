"""`skewlab clockd` as a new user meets it (issue 20, items 9 and 10): an NTP-based source needs
--ntp; a server that never answers ends in a failure line (exit 1) rather than an exit 0 after
publishing only UNSYNCHRONIZED bounds; the folders it made for the segment are removed with it;
its default path is where ClockBound clients and `skewlab sources` look."""

from __future__ import annotations

import socket
from pathlib import Path

from click.testing import CliRunner

from skewlab.cli import cli
from skewlab.cli.clockd import DEFAULT_PATH
from skewlab.clocks.external.clockbound_shm import DEFAULT_PATH as READER_DEFAULT
from skewlab.ntp.server import NtpServer


def _closed_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_default_path_is_the_readers() -> None:
    assert DEFAULT_PATH == READER_DEFAULT


def test_ntp_based_source_needs_ntp(tmp_path: Path) -> None:
    seg = tmp_path / "a" / "shm0"
    r = CliRunner().invoke(cli, ["clockd", "--source", "skewlab", "--path", str(seg),
                                 "--duration", "0.1"])  # fmt: skip
    assert r.exit_code == 2 and "stands on NTP samples: give --ntp" in r.stderr
    assert not (tmp_path / "a").exists()


def test_unanswered_ntp_fails_and_leaves_no_folders(tmp_path: Path) -> None:
    seg = tmp_path / "x" / "y" / "shm0"
    r = CliRunner().invoke(cli, [
        "clockd", "--source", "skewlab", "--path", str(seg), "--duration", "0.6",
        "--interval", "0.1", "--ntp", f"127.0.0.1:{_closed_udp_port()}", "--ntp-poll-s", "0.2",
    ])  # fmt: skip
    assert r.exit_code == 1, (r.output, r.exception)
    assert r.stderr.strip().splitlines()[-1].startswith("skewlab: error: no NTP sample from")
    assert list(tmp_path.iterdir()) == []


def test_publishes_then_removes_what_it_made(tmp_path: Path) -> None:
    seg = tmp_path / "x" / "y" / "shm0"
    with NtpServer("127.0.0.1", 0) as server:
        r = CliRunner().invoke(cli, [
            "clockd", "--source", "skewlab", "--path", str(seg), "--duration", "1",
            "--interval", "0.1", "--ntp", f"127.0.0.1:{server.port}", "--ntp-poll-s", "0.2",
        ])  # fmt: skip
    assert r.exit_code == 0, (r.output, r.exception)
    assert "stopped after" in r.stderr
    assert list(tmp_path.iterdir()) == []
