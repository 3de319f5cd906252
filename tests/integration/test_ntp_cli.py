"""`skewlab ntp-server` and `skewlab ntp-query` as a user runs them (subprocesses, loopback)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess

from skewlab.ntp.server import NtpServer
from tests.conftest import run_skewlab, skewlab_cmd


def start_cli_server(*flags: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        skewlab_cmd("ntp-server", "--port", "0", "--duration", "60", *flags),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
    if not m:
        proc.kill()
        raise AssertionError(f"no listening line: {line!r} {proc.stderr.read()}")  # type: ignore[union-attr]
    return proc, int(m.group(1))


def stop(proc: subprocess.Popen[str]) -> str:
    os.kill(proc.pid, signal.SIGTERM)
    out, _ = proc.communicate(timeout=10)
    return out


def test_query_flags_the_falseticker_started_from_the_cli() -> None:
    liar, liar_port = start_cli_server("--offset-ms", "200")
    try:
        with NtpServer("127.0.0.1", 0) as a, NtpServer("127.0.0.1", 0) as b:
            targets = [f"127.0.0.1:{a.port}", f"127.0.0.1:{liar_port}", f"127.0.0.1:{b.port}"]
            p = run_skewlab("ntp-query", "--json", "-n", "3", *targets, timeout=60)
            table = run_skewlab("ntp-query", "-n", "2", *targets, timeout=60)
    finally:
        counters_line = stop(liar)
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    verdicts = {r["server"]: r["verdict"] for r in res["servers"]}
    assert verdicts == {
        targets[0]: "selected",
        targets[1]: "falseticker",
        targets[2]: "selected",
    }
    liar_row = res["servers"][1]
    assert abs(liar_row["offset_ns"] - 200_000_000) < 1_000_000
    assert res["low_ns"] <= res["combined_offset_ns"] <= res["high_ns"]
    assert table.returncode == 0, table.stderr
    for col in ("offset ms", "delay ms", "root dist ms", "stratum", "leap", "verdict"):
        assert col in table.stdout
    assert "falseticker (outside_intersection)" in table.stdout
    counters = json.loads(counters_line.split("counters: ", 1)[1])
    assert counters["answered"] == 3 + 2


def test_query_reports_kod_and_fails_without_samples() -> None:
    denier, port = start_cli_server("--kod", "DENY")
    try:
        p = run_skewlab("ntp-query", f"127.0.0.1:{port}", timeout=60)
    finally:
        stop(denier)
    assert p.returncode == 1
    assert "rejected (kod_deny)" in p.stdout
    assert p.stderr.startswith("skewlab: error: no server gave a valid sample")


def test_cli_errors_are_one_line() -> None:
    p = run_skewlab("ntp-query", "127.0.0.1:99999")
    assert p.returncode == 2 and p.stderr.startswith("skewlab: error:"), p.stderr
    with NtpServer("127.0.0.1", 0) as busy:
        p = run_skewlab("ntp-server", "--port", str(busy.port))
    assert p.returncode == 1
    assert p.stderr.startswith("skewlab: error: cannot bind"), p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a shell starts a background job


def test_ctrl_c_stops_the_server() -> None:
    """SIGINT ends `ntp-server` (issue 20, item 3), even when it was started with SIGINT
    ignored (`skewlab ntp-server &` in a script): counters printed, exit 0."""
    for setup in (None, _ignore_sigint):
        proc = subprocess.Popen(
            skewlab_cmd("ntp-server", "--port", "0"), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL, preexec_fn=setup,
        )  # fmt: skip
        try:
            assert proc.stdout is not None and "listening on" in proc.stdout.readline()
            os.kill(proc.pid, signal.SIGINT)
            out, err = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 0, err
        assert out.startswith("counters: ") and "Traceback" not in err


def test_bad_host_is_bad_input_not_a_root_hint() -> None:
    """issue 20, item 12: `ntp-server --host nonsense` is bad input (exit 2), not a port that
    needs root."""
    from click.testing import CliRunner

    from skewlab.cli import cli

    for host in ("nonsense.invalid", "10.255.255.1"):
        r = CliRunner().invoke(cli, ["ntp-server", "--host", host, "--port", "0"])
        assert r.exit_code == 2, r.output
        assert f"--host {host}: not an address of this host" in r.stderr
        assert "root" not in r.stderr


def test_query_to_a_closed_port_says_unreachable() -> None:
    """issue 20, item 12: a port nothing listens on is 'unreachable', not 'timeout'."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends
    p = run_skewlab("ntp-query", "--json", "-n", "1", "--timeout", "0.3", f"127.0.0.1:{port}")
    assert p.returncode == 1
    (row,) = json.loads(p.stdout)["servers"]
    assert row["verdict"] == "rejected" and "unreachable" in row["reason"], row
