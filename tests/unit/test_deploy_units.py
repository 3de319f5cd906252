"""Deploy pieces without real hosts: cluster file checks, the clock sanity bound, the agent's
PID guard, and that remote commands are quoted word by word."""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from skewlab.deploy import cluster as cluster_mod
from skewlab.deploy.agent import send_signal
from skewlab.deploy.orchestrator import LaunchError
from skewlab.deploy.preflight import clock_offset_bound_ns, clock_problem
from skewlab.deploy.ssh import SshLauncher
from skewlab.spec import ExperimentSpec, SpecError


def test_clock_bound_and_limit_by_hand() -> None:
    # launcher reads a = 1_000 ms, host reads T = 1_700 ms, launcher reads b = 1_200 ms:
    # host − launcher ∈ [T − b, T − a] = [500, 700] ms
    a, t, b = 1_000_000_000, 1_700_000_000, 1_200_000_000
    lo, hi = clock_offset_bound_ns(t, a, b)
    assert (lo, hi) == (500_000_000, 700_000_000)
    assert clock_problem((lo, hi), 600.0) is None  # 600 ms is inside the bound: could be ok
    msg = clock_problem((lo, hi), 499.0)
    assert msg is not None and "+500.0 ms" in msg
    assert clock_problem((-700_000_000, -500_000_000), 499.0) is not None  # behind, too
    assert clock_problem((-700_000_000, -500_000_000), 500.0) is None


def test_cluster_placement_checked() -> None:
    spec = ExperimentSpec()  # coordinator, B, C
    hosts = [{"name": "h1", "nodes": ["coordinator", "B"]},
             {"name": "h2", "nodes": ["C", "ntp-server"]}]  # fmt: skip
    ok = cluster_mod.from_dict({"hosts": hosts})
    ok.check_against(spec)
    assert ok.host_of("ntp-server", spec).name == "h2"
    dflt = cluster_mod.from_dict({"hosts": [{"name": "h", "nodes": ["coordinator", "B", "C"]}]})
    assert dflt.host_of("ntp-server", spec).name == "h"  # with the coordinator by default
    bad = cluster_mod.from_dict({"hosts": [{"name": "h", "nodes": ["B", "B", "Z"]}]})
    with pytest.raises(SpecError) as e:
        bad.check_against(spec)
    msg = str(e.value)
    assert "more than one host: ['B']" in msg and "['Z']" in msg
    assert "placed on no host: ['coordinator', 'C']" in msg
    ext = cluster_mod.from_dict({"ntp": "10.0.0.1:123", "hosts": [
        {"name": "h", "nodes": ["coordinator", "B", "C", "ntp-server"]}]})  # fmt: skip
    with pytest.raises(SpecError, match="ntp-server"):
        ext.check_against(spec)  # an external NTP server: there is no embedded one to place
    with pytest.raises(SpecError, match="ntp is 'embedded' or HOST:PORT"):
        cluster_mod.from_dict({"ntp": "nonsense"})
    with pytest.raises(SpecError, match=r"hosts\[0\]\.name"):
        cluster_mod.from_dict({"hosts": [{"name": "-oProxyCommand=x", "nodes": []}]})
    with pytest.raises(SpecError, match="KEY=VALUE"):
        cluster_mod.from_dict({"ssh": {"options": ["-F/etc/passwd"]}})


def test_cluster_file_paths_relative_to_file(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("ssh:\n  identity_file: keys/id\nhosts: []\n")
    c = cluster_mod.load(f)
    assert c.ssh.identity_file == str((tmp_path / "keys" / "id").resolve())


def test_agent_signals_only_its_node() -> None:
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "skewlab.node",
                          "--node", "W0"])  # fmt: skip
    try:
        cmdline = Path(f"/proc/{p.pid}/cmdline")
        for _ in range(200):  # the child's command line appears once it has exec'd
            if b"W0" in cmdline.read_bytes():
                break
            time.sleep(0.01)
        assert send_signal(p.pid, "W1", "TERM")["sent"] is False  # another node's name
        assert p.poll() is None
        r = send_signal(p.pid, "W0", "TERM")
        assert r["sent"] is True
        assert p.wait(timeout=10) == -15
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert send_signal(p.pid, "W0", "KILL")["sent"] is False  # gone


def test_remote_command_words_are_quoted(tmp_path: Path) -> None:
    evil = "/tmp/x; touch /tmp/pwned $(id) 'q'"
    c = cluster_mod.from_dict({"python": evil, "hosts": [
        {"name": "h", "nodes": ["coordinator", "B", "C"]}]})  # fmt: skip
    ln = SshLauncher(ExperimentSpec(), tmp_path, c)
    captured: list[list[str]] = []

    def fake(cmd, stdin, timeout):
        captured.append(cmd)
        return 0, b"", b""

    import skewlab.deploy.ssh as ssh_mod

    orig = ssh_mod.run_capture
    ssh_mod.run_capture = fake
    try:
        ln.run_agent(c.hosts[0], ["stage", "--dir", "/a b/$HOME"])
    finally:
        ssh_mod.run_capture = orig
    remote = captured[0][-1]
    assert captured[0][-2] == "--"  # nothing after the destination is read as an ssh option
    # the remote shell splits the command back into exactly the words we meant
    assert shlex.split(remote) == [evil, "-m", "skewlab.deploy.agent", "stage", "--dir",
                                   "/a b/$HOME"]  # fmt: skip


def test_remote_launchers_refuse_namespace_mode(tmp_path: Path) -> None:
    c = cluster_mod.from_dict({"hosts": [{"name": "h", "nodes": ["coordinator", "B", "C"]}]})
    spec = ExperimentSpec()
    spec.run.netns = True
    with pytest.raises(LaunchError, match="only the local launcher"):
        SshLauncher(spec, tmp_path, c).preflight()
