"""The local launcher's side of the node starter (``node/zygote.py``).

``NodeStarter`` starts ``python -m skewlab.node.zygote`` once per run and asks it for one
forked child per node; ``StartedNode`` stands for such a child where the launcher holds a
``subprocess.Popen`` for every other carrier: ``pid``, ``stdin`` (the pipe the node's keys are
written to), ``returncode``, ``poll``, ``wait``, ``send_signal``, ``terminate``, ``kill``. The
child is the starter's, not the launcher's, so its exit status comes from the starter's
``exit`` message; signals go to its PID, which stays the node's until that message arrived (the
starter reaps it only then).

If the starter itself ends first (it is never stopped before its nodes, so only when killed
from outside), a node that is still running keeps running, and one that is gone reports
``STATUS_UNKNOWN`` with ``status_unknown`` set: its exit status went with the starter, and is
not made up.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

from skewlab.deploy.orchestrator import pid_alive
from skewlab.timebase import monotonic_s

STATUS_UNKNOWN = 255  # returncode of a node whose end the starter could not report
START_TIMEOUT_S = 60.0  # the starter's imports, then one fork
MAX_PACKET = 1 << 16


class StarterError(RuntimeError):
    """The node starter could not start a node (one line)."""


def may_fork() -> bool:
    """Whether the starter may be a fork of this process: on Linux, while it runs one thread
    (a fork keeps only the calling thread, and any lock another holds stays held), unless
    ``SKEWLAB_NODE_STARTER=exec`` asks for a new interpreter."""
    return (sys.platform == "linux" and threading.active_count() == 1
            and os.environ.get("SKEWLAB_NODE_STARTER", "fork") != "exec")  # fmt: skip


def _fork(fd: int, log: Path) -> ForkedProcess:
    """Fork the starter (``node.zygote.run_forked``), its output appended to ``log``."""
    from skewlab.node.zygote import run_forked

    log_fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        for stream in (sys.stdout, sys.stderr):  # nothing buffered is written twice
            try:
                stream.flush()
            except Exception:
                pass
        pid = os.fork()
        if pid == 0:
            try:
                run_forked(fd, log_fd)
            finally:
                os._exit(70)
    except OSError as e:
        raise StarterError(f"fork: {e.strerror}") from None
    finally:
        os.close(log_fd)
    return ForkedProcess(pid)


class ForkedProcess:
    """A forked child of this process with the part of ``Popen``'s interface the starter's
    owner uses: ``pid``, ``returncode``, ``poll``, ``wait``, ``kill``."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: its status is gone
                self.returncode = STATUS_UNKNOWN
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else monotonic_s() + timeout
        delay = 0.001
        while self.poll() is None:
            if deadline is not None and monotonic_s() >= deadline:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout or 0.0)
            threading.Event().wait(delay)
            delay = min(delay * 2, 0.05)
        assert self.returncode is not None
        return self.returncode

    def kill(self) -> None:
        if self.poll() is None:
            os.kill(self.pid, signal.SIGKILL)


class NodeStarter:
    """One ``skewlab.node.zygote`` process and the nodes it started for this launcher."""

    def __init__(self, log: Path, fork: bool | None = None) -> None:
        """``fork``: the starter a fork of this process (True) or a new interpreter (False);
        by default a fork while this process runs a single thread (``may_fork``)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._sock = ours
        self._lock = threading.Lock()
        self._codes: dict[int, int] = {}  # pid → exit code, from the starter
        self._replies: dict[int, dict[str, Any]] = {}  # request id → started / error
        self._next_id = 0
        self._lost = False  # the starter ended: no more exit messages
        self.forked = may_fork() if fork is None else fork
        try:
            if self.forked:
                self.proc: subprocess.Popen[bytes] | ForkedProcess = _fork(theirs.fileno(), log)
            else:
                with open(log, "ab") as logf:
                    self.proc = subprocess.Popen(
                        [sys.executable, "-m", "skewlab.node.zygote", "--fd", str(theirs.fileno())],
                        pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, stdout=logf,
                        stderr=subprocess.STDOUT, start_new_session=True,
                    )  # fmt: skip
        finally:
            theirs.close()

    # -- messages -------------------------------------------------------------------------------
    def _pump(self, timeout: float) -> None:
        """Read what the starter sent, waiting up to ``timeout`` s for the first message."""
        with self._lock:
            while not self._lost:
                ready, _, _ = select.select([self._sock], [], [], max(0.0, timeout))
                if not ready:
                    return
                timeout = 0.0
                try:
                    data = self._sock.recv(MAX_PACKET)
                except OSError:
                    data = b""
                if not data:
                    self._lost = True
                    return
                msg = json.loads(data)
                if msg["op"] == "exit":
                    self._codes[int(msg["pid"])] = int(msg["code"])
                else:
                    self._replies[int(msg["id"])] = msg

    def exit_code(self, pid: int, timeout: float = 0.0) -> int | None:
        """The child's exit code once the starter reported it (waiting up to ``timeout`` s);
        ``STATUS_UNKNOWN`` for a child gone after the starter ended; None while it runs."""
        deadline = monotonic_s() + timeout
        while True:
            self._pump(0.0)
            if pid in self._codes:
                return self._codes[pid]
            if self._lost and not pid_alive(pid):
                return STATUS_UNKNOWN
            left = deadline - monotonic_s()
            if left <= 0:
                return None
            if self._lost:  # no message will come: look at the PID again shortly
                threading.Event().wait(min(left, 0.05))
            else:
                self._pump(min(left, 0.2))

    # -- requests -------------------------------------------------------------------------------
    def start(self, argv: list[str], log: Path) -> StartedNode:
        """Fork one node (``python -m skewlab.node`` arguments), its output appended to
        ``log``; returns it with its stdin pipe open for the keys."""
        r, w = os.pipe()
        try:
            with open(log, "wb") as logf, self._lock:
                rid = self._next_id
                self._next_id += 1
                msg = json.dumps({"op": "start", "id": rid, "argv": argv}).encode()
                try:
                    socket.send_fds(self._sock, [msg], [r, logf.fileno()])
                except OSError as e:
                    raise StarterError(f"the node starter is gone ({e.strerror})") from None
        finally:
            os.close(r)
        deadline = monotonic_s() + START_TIMEOUT_S
        while rid not in self._replies:
            left = deadline - monotonic_s()
            if self._lost or left <= 0:
                os.close(w)
                rc = self.proc.poll()
                why = (f"exited with code {rc}" if rc is not None else
                       f"did not answer within {START_TIMEOUT_S:.0f} s")  # fmt: skip
                raise StarterError(f"the node starter (pid {self.proc.pid}) {why}")
            self._pump(min(left, 0.5))
        reply = self._replies.pop(rid)
        if reply["op"] != "started":
            os.close(w)
            raise StarterError(f"the node starter could not start the node: {reply['message']}")
        return StartedNode(self, int(reply["pid"]), os.fdopen(w, "wb"))

    def close(self, timeout: float = 5.0) -> None:
        """Let the starter go (it exits when the socket closes) and wait for it."""
        try:
            self._sock.close()
        finally:
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)


class StartedNode:
    """A node forked by the starter, with the part of ``Popen``'s interface launchers use."""

    def __init__(self, starter: NodeStarter, pid: int, stdin: IO[bytes]) -> None:
        self.starter = starter
        self.pid = pid
        self.stdin: IO[bytes] | None = stdin
        self.returncode: int | None = None

    @property
    def status_unknown(self) -> bool:
        return self.returncode == STATUS_UNKNOWN and self.pid not in self.starter._codes

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self.starter.exit_code(self.pid)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            t = 1e9 if timeout is None else timeout
            self.returncode = self.starter.exit_code(self.pid, t)
            if self.returncode is None:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", t)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:  # not reaped yet: the PID is still this node's
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)
