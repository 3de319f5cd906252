"""The node starter of the local launcher: ``python -m skewlab.node.zygote --fd N``.

A node process spends most of its start importing (the spec's pydantic models, numpy, pyarrow):
0.4-0.8 CPU-s a node, depending on the host, paid again by every node of every run. The local
launcher starts this process once per run instead; it imports the node code once, then forks
one child per node on request. Each child is still its own OS process with its own session,
emulated clock and sockets, and runs ``skewlab.node.__main__.main`` exactly as
``python -m skewlab.node`` would, from a process that has never run a node (this one runs none,
and holds no thread: forking it is safe).

Protocol, over the ``AF_UNIX`` ``SOCK_SEQPACKET`` socket inherited as ``--fd`` (one JSON
message per packet):

- launcher → starter: ``{"op": "start", "id": k, "argv": [...]}`` with two file descriptors
  attached (``SCM_RIGHTS``): the read end of the node's stdin pipe (its keys arrive there, as
  from a carrier) and its log file (stdout and stderr);
- starter → launcher: ``{"op": "started", "id": k, "pid": p}`` or
  ``{"op": "error", "id": k, "message": ...}``; later ``{"op": "exit", "pid": p, "code": c}``
  when the child ends (``code`` as ``Popen.returncode``: negative for a signal).

The starter reaps every child it started; it exits when the launcher closes the socket,
without touching children still running (as a launcher killed outright leaves its nodes).
The launcher's side is ``deploy/zygote.py``.

The starter is usually not a new interpreter but a fork of the launcher itself
(``run_forked``), which has already imported most of what a node imports (the spec's models,
numpy, pyarrow): it then starts in ~0.1 CPU-s instead of ~0.7. It first makes itself a fresh
process: its own session, stdin from /dev/null and its output to the log, no descriptor of the
launcher's left open, the launcher's signal handlers back to their defaults, none of its exit
handlers, and its objects never collected (``gc.freeze``: what they owned was closed). The
launcher forks only while it runs a single thread; otherwise it starts ``python -m
skewlab.node.zygote`` as before.
"""

from __future__ import annotations

import argparse
import array
import atexit
import faulthandler
import gc
import importlib
import json
import os
import select
import signal
import socket
import sys
import traceback
from collections.abc import Callable
from typing import Any, NoReturn

MAX_PACKET = 1 << 16  # one message: a node's argv is well under 4 KiB
MAX_FDS = 2
# imported later by every node (found by comparing sys.modules at a node's end): socket's
# IDNA codec (getaddrinfo on a host name) and numpy.ma (through numpy functions)
PRELOAD = ("encodings.idna", "numpy.ma")
_INHERITED: list[Any] = []  # the launcher's standard streams, in a forked starter


def _send(sock: socket.socket, msg: dict[str, Any]) -> None:
    sock.send(json.dumps(msg).encode())


def _recv(sock: socket.socket) -> tuple[dict[str, Any] | None, list[int]]:
    """One message and the descriptors attached to it; (None, []) at end of stream."""
    fds = array.array("i")
    data, anc, _flags, _addr = sock.recvmsg(MAX_PACKET, socket.CMSG_SPACE(MAX_FDS * fds.itemsize))
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
    if not data:
        for fd in fds:
            os.close(fd)
        return None, []
    return json.loads(data), list(fds)


def _reap(sock: socket.socket, children: set[int]) -> None:
    """Report every child that ended."""
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        if pid in children:
            children.discard(pid)
            _send(sock, {"op": "exit", "pid": pid, "code": os.waitstatus_to_exitcode(status)})


def serve(fd: int) -> list[str] | None:
    """Serve the launcher until it closes the socket (returns None), or, in a forked child,
    return that node's argv for the caller to run (every frame of the loop is gone by then)."""
    sock = socket.socket(fileno=fd)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # the wakeup fd is what wakes the loop
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the launcher stops it by closing the socket
    children: set[int] = set()
    while True:
        ready, _, _ = select.select([sock, wake_r], [], [], 1.0)
        if wake_r in ready:
            os.read(wake_r, 512)
        _reap(sock, children)
        if sock not in ready:
            continue
        msg, fds = _recv(sock)
        if msg is None:
            return None
        if msg.get("op") != "start" or len(fds) != 2:
            for f in fds:
                os.close(f)
            _send(sock, {"op": "error", "id": msg.get("id"), "message": "bad request"})
            continue
        stdin_fd, log_fd = fds
        set_up_r, set_up_w = os.pipe()  # closed by the child once it is set up
        try:
            pid = os.fork()
        except OSError as e:
            for f in (stdin_fd, log_fd, set_up_r, set_up_w):
                os.close(f)
            _send(sock, {"op": "error", "id": msg["id"], "message": f"fork: {e.strerror}"})
            continue
        if pid == 0:  # the node: its own session, its stdin and log, none of the starter's fds
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a new interpreter
            os.setsid()
            os.dup2(stdin_fd, 0)
            os.dup2(log_fd, 1)
            os.dup2(log_fd, 2)
            for f in (stdin_fd, log_fd, wake_r, wake_w, set_up_r, set_up_w):
                os.close(f)
            sock.close()
            return [str(a) for a in msg["argv"]]
        for f in (stdin_fd, log_fd, set_up_w):
            os.close(f)
        os.read(set_up_r, 1)  # end of file: the child has its session and fds (or is gone)
        os.close(set_up_r)
        children.add(pid)
        _send(sock, {"op": "started", "id": msg["id"], "pid": pid})


def _fresh_std_streams() -> None:
    """Text streams over the child's own fds 0-2, as a new interpreter would open them."""
    sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", encoding="utf-8", closefd=False, buffering=1)  # noqa: SIM115


def _serve_then_run(fd: int) -> int:
    """Import the node code, serve; in a forked child, run the node (its exit code)."""
    from skewlab.node import __main__ as node_main  # the import paid once, for every node

    for mod in PRELOAD:
        importlib.import_module(mod)

    argv = serve(fd)
    if argv is None:
        return 0
    _fresh_std_streams()
    return node_main.main(argv)


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m skewlab.node.zygote")
    ap.add_argument("--fd", type=int, required=True, help="the launcher's socket (inherited)")
    a = ap.parse_args()
    return _serve_then_run(a.fd)


def run_forked(fd: int, log_fd: int) -> NoReturn:
    """The starter in a child just forked from the launcher (which keeps ``fd``'s peer):
    made a fresh process, then ``_serve_then_run``; never returns, here or in the nodes it
    forks, which end as an interpreter would (``_exit_like_python``)."""
    code = 70  # EX_SOFTWARE: something failed before the starter could run
    try:
        gc.freeze()  # the launcher's objects: never collected here (their fds are closed below)
        os.setsid()
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        if faulthandler.is_enabled():  # it writes to a descriptor closed below
            faulthandler.disable()
        signal.set_wakeup_fd(-1)
        os.closerange(3, fd)
        os.closerange(fd + 1, os.sysconf("SC_OPEN_MAX"))
        for sig in signal.valid_signals():  # the launcher's handlers, as a new process has none
            try:
                if callable(signal.getsignal(sig)) and sig not in (signal.SIGKILL, signal.SIGSTOP):
                    signal.signal(sig, signal.default_int_handler if sig == signal.SIGINT
                                  else signal.SIG_DFL)  # fmt: skip
            except (OSError, ValueError):
                pass
        atexit._clear()  # the launcher's exit handlers are not this process's
        _INHERITED.extend((sys.stdin, sys.stdout, sys.stderr))  # never freed (nor closed)
        _fresh_std_streams()
    except BaseException:
        os._exit(code)
    _exit_like_python(lambda: _serve_then_run(fd))


def _exit_like_python(run: Callable[[], int | None]) -> NoReturn:
    """Run ``run`` and end as ``sys.exit(run())`` would in a new interpreter (exit code,
    traceback, exit handlers, flushed output), without the finalization of the objects this
    process inherited from the launcher."""
    code: Any = 1
    interrupted = False
    try:
        code = run()
    except SystemExit as e:
        code = e.code
    except KeyboardInterrupt:
        traceback.print_exc()
        interrupted = True
    except BaseException:
        traceback.print_exc()
        code = 1
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    try:
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        if interrupted:  # as Python ends on an uncaught KeyboardInterrupt: killed by SIGINT
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
        os._exit(code & 0xFF)


if __name__ == "__main__":
    sys.exit(main())
