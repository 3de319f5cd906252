"""`deploy --launcher local --preflight-only` checks this host as the SSH and Slurm pre-flights
check theirs (issue 20, item 8): a fixed UDP port another process holds fails it, naming the
port and its key, and a passing check prints the host's `ok` line."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from skewlab.cli import cli


@pytest.mark.parametrize("where", ["ntp", "node"])
def test_port_held_by_another_process_fails(tmp_path: Path, where: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as held:
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        cfg = tmp_path / "e.toml"
        if where == "ntp":
            cfg.write_text(f"[ntp]\nport = {port}\n")
            key = "ntp.port"
        else:
            cfg.write_text(
                '[[nodes]]\nname = "coordinator"\nrole = "coordinator"\n'
                f'[[nodes]]\nname = "B"\nport = {port}\n[[nodes]]\nname = "C"\n'
            )
            key = "nodes[1].port (B)"
        r = CliRunner().invoke(cli, ["deploy", str(cfg), "--launcher", "local",
                                     "--preflight-only"])  # fmt: skip
    assert r.exit_code == 1, r.output
    err = r.stderr.strip().splitlines()[-1]
    assert err.startswith("skewlab: error: pre-flight, this host: ")
    assert f"UDP port 127.0.0.1:{port} ({key}) is not free" in err


def test_passing_preflight_prints_the_host(tmp_path: Path) -> None:
    cfg = tmp_path / "e.toml"
    cfg.write_text('name = "pf"\n')
    r = CliRunner().invoke(cli, ["deploy", str(cfg), "--launcher", "local", "--preflight-only"])
    assert r.exit_code == 0, r.output
    assert "ok    localhost: skewlab " in r.stderr
    assert "every check passed" in r.stdout
    assert not list(tmp_path.glob("results*"))
