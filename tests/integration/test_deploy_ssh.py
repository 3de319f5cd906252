"""The SSH launcher against a real sshd on loopback (throwaway host and user keys)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from skewlab.deploy import cluster as cluster_mod
from skewlab.deploy.orchestrator import pid_alive
from skewlab.deploy.ssh import SshLauncher
from skewlab.spec import from_dict
from skewlab.trace import load_receipts, part_files, read_parts
from tests.conftest import run_skewlab, skewlab_cmd
from tests.integration.deploy_fixtures import (
    Sshd,
    check_measured_truth,
    experiment,
    files_holding,
    free_port,
    ssh_cluster,
    start_sshd,
    write_json,
)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory):
    yield from start_sshd(tmp_path_factory.mktemp("sshd"))


def _results(out: Path) -> Path:
    (d,) = [p for p in out.iterdir() if p.is_dir()]
    return d


def _assert_all_stopped(meta: dict) -> None:
    for n, info in meta["nodes"].items():
        assert info["pid"] is not None, n  # every node reported its pid in its hello
        assert not pid_alive(info["pid"]), f"{n} (pid {info['pid']}) still runs"
        assert not pid_alive(info["carrier_pid"]), f"ssh of {n} still runs"


def test_ssh_two_hosts_copy_back(sshd: Sshd, tmp_path: Path) -> None:
    # two "hosts" (two names of this machine), each with its own remote folder whose path
    # needs shell quoting: every remote word must arrive as one argument
    ra, rb = tmp_path / "remote A $x", tmp_path / "remote 'B'"
    cluster = ssh_cluster(
        sshd, clocks="emulated", workdir=str(ra),
        hosts=[
            {"name": "127.0.0.1", "nodes": ["coordinator", "ntp-server", "W0"]},
            {"name": "localhost", "address": "127.0.0.1", "nodes": ["W1"], "workdir": str(rb)},
        ],
    )  # fmt: skip
    exp = write_json(tmp_path / "exp.json", experiment())
    cl = write_json(tmp_path / "cluster.json", cluster)
    out = tmp_path / "out"
    r = run_skewlab("deploy", str(exp), "--cluster", str(cl), "-o", str(out), "--no-figures",
                    timeout=240)  # fmt: skip
    assert r.returncode == 0, r.stderr + r.stdout
    res = _results(out)
    meta = json.loads((res / "metadata.json").read_text())
    assert meta["status"] == "completed" and meta["launcher"] == "ssh"
    assert meta["placement"] == {"coordinator": "127.0.0.1", "W0": "127.0.0.1",
                                 "W1": "localhost", "ntp-server": "127.0.0.1"}  # fmt: skip
    # emulated oscillators, one kernel clock on both "hosts": true time exists
    boots = {h["boot_id"] for h in meta["hosts"].values()}
    assert len(boots) == 1 and meta["truth_available"] is True
    assert set(meta["hosts"]) == {"127.0.0.1", "localhost"}
    # traces were copied back from the remote folders, which were then removed
    assert not ra.exists() or not any(ra.iterdir())
    assert not rb.exists() or not any(rb.iterdir())
    sends = read_parts(res / "traces" / "coordinator", "events")
    assert sends.num_rows == 60
    stats = json.loads((res / "stats.json").read_text())
    for w in ("W0", "W1"):
        rec = load_receipts(res / "traces" / w, json.loads((res / "spec.json").read_text())
                            ["sources"])  # fmt: skip
        ids = rec.column("event_id").to_pylist()
        counts = json.loads((res / "traces" / w / "counts.json").read_text())
        assert len(ids) == len(set(ids)) == counts["received"] == meta["accounting"][w]["received"]
        assert stats["workers"][w]["accounting"]["received"] == len(ids)
    # measured truth by default, its traces copied back; exact truth here lies inside it
    check_measured_truth(res, ("coordinator", "W0", "W1"), exact=True)
    _assert_all_stopped(meta)


def test_ssh_external_ntp_keeps_the_embedded_truth_reference(sshd: Sshd, tmp_path: Path) -> None:
    """ntp = HOST:PORT: no embedded NTP server for the experiment, yet measured truth's
    embedded reference runs, alone, in an ntp-server node process on the coordinator's host."""
    from skewlab.ntp.server import NtpServer

    with NtpServer("127.0.0.1", 0) as ntp:
        cluster = ssh_cluster(
            sshd, clocks="emulated", ntp=f"127.0.0.1:{ntp.port}",
            hosts=[{"name": "127.0.0.1", "nodes": ["coordinator", "W0", "W1"]}],
        )  # fmt: skip
        exp = write_json(tmp_path / "exp.json", experiment(events=40))
        cl = write_json(tmp_path / "cluster.json", cluster)
        out = tmp_path / "out"
        r = run_skewlab("deploy", str(exp), "--cluster", str(cl), "-o", str(out),
                        "--no-figures", timeout=240)  # fmt: skip
        polled = ntp.counters["answered"]
    assert r.returncode == 0, r.stderr + r.stdout
    assert polled > 0  # the experiment's NTP traffic went to the external server
    res = _results(out)
    meta = json.loads((res / "metadata.json").read_text())
    assert meta["ntp"] == f"127.0.0.1:{ntp.port}"
    ref = meta["nodes"]["ntp-server"]["counts"]
    assert ref["truth_reference"]["answered"] > 0 and "answered" not in ref  # reference only
    assert meta["measured_truth"]["reference"] != meta["ntp"]
    check_measured_truth(res, ("coordinator", "W0", "W1"), exact=True)
    _assert_all_stopped(meta)


def test_ssh_keys_travel_only_on_the_ssh_channel(sshd: Sshd, tmp_path: Path) -> None:
    # the launcher in this process (so the test holds the run's secret): each node's keys go
    # through ssh's stdin; nowhere on a command line, in the remote copy, the results or a log
    remote = tmp_path / "remote"
    cluster = cluster_mod.from_dict(ssh_cluster(
        sshd, clocks="emulated", workdir=str(remote), keep_remote=True,
        hosts=[{"name": "127.0.0.1", "nodes": ["coordinator", "ntp-server", "W0", "W1"]}],
    ))  # fmt: skip
    spec = from_dict(experiment(events=100, interval_ms=3.0))
    ln = SshLauncher(spec, tmp_path / "out", cluster)
    material = ln.secrets.material(["coordinator", "ntp-server", "W0", "W1"])
    seen: list[str] = []
    leaks: list[str] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            for d in Path("/proc").iterdir():
                try:
                    cmd = (d / "cmdline").read_bytes() if d.name.isdigit() else b""
                except OSError:
                    continue
                if b"skewlab.node" in cmd:
                    seen.append(d.name)
                if any(k in cmd for k in material):
                    leaks.append(cmd.decode(errors="replace"))
            time.sleep(0.1)

    t = threading.Thread(target=watch)
    t.start()
    try:
        outcome = ln.run()
    finally:
        done.set()
        t.join()
    assert len(set(seen)) >= 4 and leaks == []  # ssh clients and remote nodes both looked at
    meta = json.loads((outcome.results.metadata_path).read_text())
    assert meta["status"] == "completed"
    assert meta["security"]["events"] == "hmac-sha256, fresh per-run key"
    assert meta["accounting"]["W0"]["lost"] == meta["accounting"]["W1"]["lost"] == 0
    assert remote.is_dir() and any(remote.rglob("spec.json"))  # the kept remote copy
    for root in (outcome.results.root, remote, sshd.identity.parent):  # incl. sshd's log
        assert files_holding(root, material) == []


def test_ssh_worker_killed_mid_deploy(sshd: Sshd, tmp_path: Path) -> None:
    # real clocks, results read in place (shared file system)
    cluster = ssh_cluster(
        sshd, clocks="real",
        hosts=[{"name": "127.0.0.1", "nodes": ["coordinator", "W0", "W1"]}],
    )  # fmt: skip
    exp = write_json(tmp_path / "exp.json", experiment(events=3000, interval_ms=2.0))
    cl = write_json(tmp_path / "cluster.json", cluster)
    out = tmp_path / "out"
    p = subprocess.Popen(
        skewlab_cmd("deploy", str(exp), "--cluster", str(cl), "-o", str(out), "--no-figures",
                    "-q"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        pid = None
        while time.monotonic() < deadline and p.poll() is None:
            dirs = [d for d in out.iterdir() if d.is_dir()] if out.exists() else []
            if dirs and (dirs[0] / "metadata.json").exists():
                meta = json.loads((dirs[0] / "metadata.json").read_text())
                pid = (meta.get("nodes", {}).get("W0") or {}).get("pid")
                if pid and part_files(dirs[0] / "traces" / "W0", "events"):
                    break
            time.sleep(0.05)
        assert pid, "W0 never reported its pid and wrote a batch"
        os.kill(pid, signal.SIGKILL)
        _stdout, stderr = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 1, stderr
    assert "W0" in stderr and "failed node" in stderr
    res = _results(out)
    meta = json.loads((res / "metadata.json").read_text())
    assert meta["status"] == "failed"
    assert list(meta["failed_nodes"]) == ["W0"]
    assert meta["truth_available"] is False and meta["clocks"] == "real"
    # partial results analysed: W1 kept receiving until the stop, W0's whole batches are there
    stats = json.loads((res / "stats.json").read_text())
    assert stats["truth_available"] is False
    w0 = read_parts(res / "traces" / "W0", "events").num_rows
    w1 = json.loads((res / "traces" / "W1" / "counts.json").read_text())["received"]
    assert 0 < w0 < 3000 and 0 < w1 < 3000
    assert stats["workers"]["W1"]["accounting"]["received"] == w1
    # real clocks: no exact truth, measured truth instead (W0 was killed: only W1 is checked)
    check_measured_truth(res, ("W1",), exact=False)
    _assert_all_stopped(meta)


def test_ssh_preflight_reports_each_problem(sshd: Sshd, tmp_path: Path) -> None:
    busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    busy.bind(("127.0.0.1", 0))
    taken = busy.getsockname()[1]
    closed = free_port()  # nothing listens there
    try:
        e = experiment()
        e["nodes"][1]["port"] = taken
        cluster = ssh_cluster(
            sshd,
            hosts=[
                {"name": "127.0.0.1", "nodes": ["coordinator", "W0"]},
                {"name": "localhost", "address": "127.0.0.1", "port": closed, "nodes": ["W1"]},
            ],
        )
        exp = write_json(tmp_path / "exp.json", e)
        cl = write_json(tmp_path / "cluster.json", cluster)
        r = run_skewlab("deploy", str(exp), "--cluster", str(cl), "--preflight-only",
                        "-o", str(tmp_path / "out"), timeout=120)  # fmt: skip
    finally:
        busy.close()
    assert r.returncode == 1
    err = r.stderr
    assert f"UDP port {taken} is not free" in err
    assert "localhost: unreachable" in err
    assert "ok    127.0.0.1" not in err  # the busy port fails that host
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_ssh_needs_cluster_and_valid_placement(tmp_path: Path) -> None:
    exp = write_json(tmp_path / "exp.json", experiment())
    r = run_skewlab("deploy", str(exp), "--launcher", "ssh", timeout=60)
    assert r.returncode == 2 and "needs --cluster" in r.stderr
    cl = write_json(tmp_path / "c.json", {"hosts": [{"name": "h", "nodes": ["W0", "X"]}]})
    r = run_skewlab("deploy", str(exp), "--launcher", "ssh", "--cluster", str(cl), timeout=60)
    assert r.returncode == 2
    assert "['X']" in r.stderr and "placed on no host: ['coordinator', 'W1']" in r.stderr
    assert sys.executable  # the same interpreter runs remote nodes by default
