"""The local launcher's node starter (node/zygote.py, deploy/zygote.py): a forked node behaves as
a started ``python -m skewlab.node`` would for everything the launcher relies on — exit code,
log, keys on stdin, its own session, signals by PID — and an exit status lost with a killed
starter is reported as unknown, never made up.

The nodes here never reach a control server: they stop where ``skewlab.node.__main__`` reads
its arguments or its keys, which is what these checks need.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from skewlab.deploy.orchestrator import NodeProc
from skewlab.deploy.zygote import STATUS_UNKNOWN, NodeStarter, StartedNode


def _argv(control: str = "127.0.0.1:9") -> list[str]:
    return ["worker", "--spec", "/nonexistent/spec.json", "--node", "B", "--control", control,
            "--results", "/nonexistent", "--t0", "0"]  # fmt: skip


@pytest.fixture(params=[True, False], ids=["forked", "exec"])
def starter(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[NodeStarter]:
    """The starter both ways: a fork of this process, and a new interpreter."""
    s = NodeStarter(tmp_path / "starter.log", fork=request.param)
    assert s.forked is request.param
    yield s
    s.close()


@pytest.fixture
def forked(tmp_path: Path) -> Iterator[NodeStarter]:
    """A forked starter, for what happens after the starter itself is gone (the launcher's
    side, the same either way)."""
    s = NodeStarter(tmp_path / "starter.log", fork=True)
    yield s
    s.close()


def _spec(tmp_path: Path) -> str:
    from skewlab.spec import ExperimentSpec

    p = tmp_path / "spec.json"
    p.write_text(ExperimentSpec().to_json())
    return str(p)


def test_exit_code_and_log_of_a_bad_command_line(starter: NodeStarter, tmp_path: Path) -> None:
    node = starter.start(["worker", "--no-such-option"], tmp_path / "B.log")
    assert node.wait(30) == 2  # argparse's usage error, as `python -m skewlab.node` exits
    assert "usage: python -m skewlab.node" in (tmp_path / "B.log").read_text()
    assert node.poll() == 2 and node.returncode == 2


def test_keys_are_read_from_the_pipe(starter: NodeStarter, tmp_path: Path) -> None:
    """What is written to the node's stdin reaches it: a malformed line is refused as such (an
    unconnected stdin would read as "no keys")."""
    argv = _argv()
    argv[argv.index("--spec") + 1] = _spec(tmp_path)
    node = starter.start(argv, tmp_path / "B.log")
    assert node.stdin is not None
    node.stdin.write(b"not json\n")
    node.stdin.close()
    assert node.wait(30) == 2
    assert (
        "B: control channel: malformed keys on standard input" in (tmp_path / "B.log").read_text()
    )


def _blocked(starter: NodeStarter, tmp_path: Path) -> StartedNode:
    """A node waiting for its keys (its stdin pipe left open)."""
    argv = _argv()
    argv[argv.index("--spec") + 1] = _spec(tmp_path)
    node = starter.start(argv, tmp_path / "B.log")
    assert node.poll() is None
    return node


def test_own_session_and_signals_by_pid(starter: NodeStarter, tmp_path: Path) -> None:
    node = _blocked(starter, tmp_path)
    assert os.getsid(node.pid) == node.pid  # Ctrl-C at the launcher's terminal does not reach it
    assert node.pid != starter.proc.pid
    with pytest.raises(Exception, match="timed out"):
        node.wait(0.3)
    node.terminate()
    assert node.wait(30) == -signal.SIGTERM
    node.kill()  # after it ended: nothing is signalled (its PID may be another's by now)


def test_lost_starter_gives_an_unknown_status(forked: NodeStarter, tmp_path: Path) -> None:
    starter = forked
    node = _blocked(starter, tmp_path)
    os.kill(starter.proc.pid, signal.SIGKILL)
    starter.proc.wait(10)
    assert node.poll() is None  # the node outlives its starter, as an orphaned process would
    os.kill(node.pid, signal.SIGKILL)
    assert node.wait(30) == STATUS_UNKNOWN
    assert node.status_unknown
    proc = NodeProc("B", "worker", node, tmp_path / "B.log")
    assert "exit status is unknown" in proc.exit_text(node.returncode)


def test_a_start_after_the_starter_died_is_one_line(forked: NodeStarter, tmp_path: Path) -> None:
    starter = forked
    os.kill(starter.proc.pid, signal.SIGKILL)
    starter.proc.wait(10)
    with pytest.raises(Exception, match="node starter") as e:
        starter.start(_argv(), tmp_path / "B.log")
    assert "\n" not in str(e.value)


def test_the_starter_exits_when_the_launcher_lets_go(tmp_path: Path) -> None:
    s = NodeStarter(tmp_path / "starter.log")
    node = s.start(["worker", "--no-such-option"], tmp_path / "B.log")
    assert node.wait(30) == 2
    s.close()
    assert s.proc.returncode == 0  # it saw the socket close and ended on its own


def test_a_forked_starter_keeps_nothing_of_the_launcher(tmp_path: Path) -> None:
    """The starter forked from this process, and the node it forks, hold none of its
    descriptors (the write end of a pipe closed here reads as closed at once), run none of its
    signal handlers (SIGTERM kills the node) and none of its exit handlers."""
    import atexit
    import select

    marker = tmp_path / "launcher-atexit-ran"
    r, w = os.pipe()
    old = signal.signal(signal.SIGTERM, lambda *_: marker.write_text("handler"))

    def at_exit() -> None:
        marker.write_text("atexit")

    atexit.register(at_exit)
    try:
        s = NodeStarter(tmp_path / "starter.log", fork=True)
        node = _blocked(s, tmp_path)
    finally:
        signal.signal(signal.SIGTERM, old)
        atexit.unregister(at_exit)
    try:
        os.close(w)
        ready, _, _ = select.select([r], [], [], 5)
        assert ready and os.read(r, 1) == b""  # end of file: nobody else holds the write end
        node.terminate()
        assert node.wait(30) == -signal.SIGTERM  # the default disposition, not our handler
    finally:
        os.close(r)
        s.close()
    assert s.proc.returncode == 0
    assert not marker.exists()


def test_the_starter_is_a_new_interpreter_while_threads_run(tmp_path: Path) -> None:
    import threading

    from skewlab.deploy.zygote import may_fork

    done = threading.Event()
    t = threading.Thread(target=done.wait)
    t.start()
    try:
        assert not may_fork()
        s = NodeStarter(tmp_path / "starter.log")
        assert not s.forked
        node = s.start(["worker", "--no-such-option"], tmp_path / "B.log")
        assert node.wait(30) == 2
        s.close()
    finally:
        done.set()
        t.join()


def test_a_failed_run_lets_the_starter_go(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The starter is forked before the control server listens; when listening fails, the run
    fails with that reason and the starter is gone (not left behind)."""
    import json

    from skewlab.deploy.local import LaunchError, LocalLauncher
    from skewlab.deploy.orchestrator import pid_alive
    from skewlab.spec import ExperimentSpec

    # 192.0.2.1 (TEST-NET-1) is no address of this host: binding it fails, nothing is sent
    monkeypatch.setattr(LocalLauncher, "control_listen", lambda self: ("192.0.2.1", 0))
    launcher = LocalLauncher(ExperimentSpec(), tmp_path / "out")
    with pytest.raises(LaunchError, match=r"cannot listen for control connections on 192\.0\.2\.1"):
        launcher.run()
    (run,) = (tmp_path / "out").iterdir()
    meta = json.loads((run / "metadata.json").read_text())
    assert meta["status"] == "failed" and "cannot listen" in meta["error"]
    assert meta["node_starter"] in ("forked", "exec")
    assert not pid_alive(meta["node_starter_pid"]) and launcher.starter is None
