"""A default local run under attack from the same host (docs/RELIABILITY.md, threat model):
foreign clients on the live control port, forged events at a live worker, and a look for the
run's secret in every process's command line and environment and in every file it wrote.

One run (module fixture, ~3 s); each test checks one row of the threat-model table.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from skewlab.deploy.local import LocalLauncher, RunOutcome
from skewlab.net import wire
from skewlab.spec import ExperimentSpec, from_dict
from skewlab.trace import read_parts

EVENTS = 400
FORGED = 60  # forged events of each kind sent at worker B
FORGED_LOCAL = 0x7E57_F0F0_F0F0


@dataclass
class Attacked:
    spec: ExperimentSpec
    launcher: LocalLauncher
    outcome: RunOutcome | None = None
    error: BaseException | None = None
    progress: list[str] = field(default_factory=list)
    node_pids_seen: set[int] = field(default_factory=set)
    leaks: list[str] = field(default_factory=list)  # where key material was found, live
    foreign_pid: int = 424242


def _spec() -> ExperimentSpec:
    return from_dict({
        "name": "attacked",
        "workload": {"events": EVENTS, "interval_ms": 4.0},
        "run": {"warmup_s": 0, "drain_s": 0.3, "batch_rows": 100},
        "ntp": {"poll_s": 0.5},
        "commit_wait": {"delays_s": [0.05]},
    })  # fmt: skip


def _foreign_control_clients(addr: tuple[str, int], pid: int) -> None:
    """What anyone on the host can do to the control port: speak the old plain-JSON protocol
    as node B (hello with a foreign PID, error, done), answer the challenge with a made-up
    MAC, or connect and leave."""
    c = socket.create_connection(addr, timeout=5)
    c.makefile("rb").readline()  # the challenge
    for msg in ({"type": "hello", "node": "B", "pid": pid, "host": "evil"},
                {"type": "error", "node": "B", "message": "forged failure"},
                {"type": "done", "node": "B", "counts": {"received": 1}}):  # fmt: skip
        try:
            c.sendall(json.dumps(msg).encode() + b"\n")
        except OSError:
            break
    c.close()
    c = socket.create_connection(addr, timeout=5)
    f = c.makefile("rb")
    nonce = json.loads(f.readline())["nonce"]
    c.sendall(json.dumps({"type": "auth", "node": "B", "nonce": nonce,  # its own nonce back
                          "mac": "ab" * 32}).encode() + b"\n")  # fmt: skip
    f.readline()
    c.close()
    socket.create_connection(addr, timeout=5).close()


def _forged_events(spec: ExperimentSpec, addr: tuple[str, int]) -> None:
    unsigned = wire.WireCodec(spec.sources)
    guessed = wire.WireCodec(spec.sources, b"guessed key")
    flat = (2, 5, 4, 6) * len(spec.sources)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i in range(FORGED):
        s.sendto(unsigned.encode_flat(wire.KIND_EVENT, i, i, FORGED_LOCAL, flat, 0), addr)
        s.sendto(guessed.encode_flat(wire.KIND_EVENT, i, i, FORGED_LOCAL, flat, 0), addr)
    s.close()


def _scan_processes(material: list[bytes], run: Attacked) -> None:
    """Every process's command line (and our node processes' environments) against the keys."""
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes()
        except OSError:
            continue
        if b"skewlab.node" in cmd:
            run.node_pids_seen.add(int(d.name))
            try:
                env = (d / "environ").read_bytes()
            except OSError:
                env = b""
            if any(k in env for k in material):
                run.leaks.append(f"/proc/{d.name}/environ")
        if any(k in cmd for k in material):
            run.leaks.append(f"/proc/{d.name}/cmdline")


@pytest.fixture(scope="module")
def attacked(tmp_path_factory: pytest.TempPathFactory) -> Attacked:
    spec = _spec()
    ready = threading.Event()
    workers: dict[str, tuple[str, int]] = {}
    run: Attacked

    def progress(line: str) -> None:
        run.progress.append(line)
        if line.startswith("workers ready: "):
            for part in line.removeprefix("workers ready: ").split(", "):
                name, _, hp = part.partition("=")
                host, _, port = hp.rpartition(":")
                workers[name] = (host, int(port))
            ready.set()

    run = Attacked(spec, LocalLauncher(spec, tmp_path_factory.mktemp("attacked"), progress))
    material = run.launcher.secrets.material(["B", "C", "coordinator", "ntp-server"])

    def go() -> None:
        try:
            run.outcome = run.launcher.run()
        except BaseException as e:  # reported by the tests
            run.error = e

    t = threading.Thread(target=go)
    t.start()
    assert ready.wait(60), run.progress
    control = run.launcher.control
    assert control is not None
    _foreign_control_clients(control.address, run.foreign_pid)
    _forged_events(spec, workers["B"])
    while t.is_alive():  # the coordinator starts and sends: look at every process meanwhile
        _scan_processes(material, run)
        time.sleep(0.1)
    t.join()
    return run


def test_foreign_control_clients_change_nothing(attacked: Attacked) -> None:
    assert attacked.error is None, attacked.error
    assert attacked.outcome is not None
    res = attacked.outcome.results.root
    meta = json.loads((res / "metadata.json").read_text())
    assert meta["status"] == "completed" and meta["failed_nodes"] == {}
    # the three foreign connections were closed and counted, by reason
    assert meta["security"]["control_rejected"] == {"no_auth": 2, "bad_mac": 1}
    assert len(meta["security"]["control_rejected_peers"]) == 3
    assert any("could not authenticate" in p for p in attacked.progress)
    # nothing they said reached the launcher: B's PID and host are its own, its counts real
    b = meta["nodes"]["B"]
    assert b["pid"] != attacked.foreign_pid and b["host"] != "evil"
    assert b["pid"] in attacked.node_pids_seen
    for w in ("B", "C"):
        acc = meta["accounting"][w]
        assert acc == {"sent": EVENTS, "received": EVENTS, "duplicated": 0,
                       "rejected": acc["rejected"], "lost": 0}  # fmt: skip
        counts = json.loads((res / "traces" / w / "counts.json").read_text())
        assert meta["nodes"][w]["counts"]["received"] == counts["received"] == EVENTS


def test_forged_events_rejected_and_counted(attacked: Attacked) -> None:
    assert attacked.outcome is not None
    res = attacked.outcome.results.root
    b = json.loads((res / "traces" / "B" / "counts.json").read_text())
    assert b["rejected_unauthenticated"] == FORGED and b["rejected_bad_mac"] == FORGED
    assert b["rejected"] == 2 * FORGED and b["received"] == EVENTS and b["lost"] == 0
    rows = read_parts(res / "traces" / "B", "events")
    assert FORGED_LOCAL not in set(rows.column("send_local_ns").to_pylist())
    meta = json.loads((res / "metadata.json").read_text())
    assert meta["security"]["events"] == "hmac-sha256, fresh per-run key"
    assert json.loads((res / "spec.json").read_text())["run"]["hmac_key"] is True


def test_secret_in_no_command_line_file_or_log(attacked: Attacked) -> None:
    assert attacked.outcome is not None
    assert len(attacked.node_pids_seen) >= 4  # the scan did see the node processes
    assert attacked.leaks == []
    material = attacked.launcher.secrets.material(["B", "C", "coordinator", "ntp-server"])
    files = [p for p in attacked.outcome.results.root.rglob("*") if p.is_file()]
    assert any(p.parent.name == "logs" for p in files)
    found = [str(p) for p in files if any(k in p.read_bytes() for k in material)]
    assert found == []
    said = "\n".join(attacked.progress).encode()
    assert not any(k in said for k in material)


def test_fixed_key_is_never_written() -> None:
    data: dict[str, Any] = json.loads(_spec().to_json())
    data["run"]["hmac_key"] = "my fixed key"
    spec = from_dict(data)
    assert "my fixed key" not in spec.to_json()
    assert json.loads(spec.to_json())["run"]["hmac_key"] is True
