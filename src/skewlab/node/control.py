"""Control channel between the launcher and its nodes: JSON lines over loopback TCP.

Node → launcher: hello, warmup (progress), ready, progress, done, error.
Launcher → node: start, stop. A node whose control connection drops stops by itself, so no
node outlives its launcher.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import threading
from dataclasses import dataclass
from typing import Any


class ControlLink:
    """The node side of the control channel."""

    def __init__(self, address: tuple[str, int], node: str) -> None:
        self.node = node
        self.sock = socket.create_connection(address, timeout=10)
        self.sock.settimeout(None)
        self._wlock = threading.Lock()
        self.start_event = threading.Event()
        self.stop_event = threading.Event()
        self.lost = False
        self._thread = threading.Thread(target=self._reader, name="control", daemon=True)
        self._thread.start()
        self.send("hello", **hello_fields())

    def send(self, type_: str, **fields: Any) -> None:
        msg = json.dumps({"type": type_, "node": self.node, **fields}, default=str) + "\n"
        with self._wlock:
            try:
                self.sock.sendall(msg.encode())
            except OSError:
                self.lost = True
                self.stop_event.set()

    def _reader(self) -> None:
        f = self.sock.makefile("r", encoding="utf-8")
        try:
            for line in f:
                try:
                    msg = json.loads(line)
                except json.JSONDecodeError:
                    continue
                t = msg.get("type")
                if t == "start":
                    self.start_event.set()
                elif t == "stop":
                    self.stop_event.set()
        except OSError:
            pass
        self.lost = not self.stop_event.is_set()
        self.stop_event.set()
        self.start_event.set()  # unblock anyone waiting to start: they will see stop_event

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def hello_fields() -> dict[str, Any]:
    """What a node tells the launcher first: its PID and host (so a remote launcher can stop
    exactly this process), its Slurm job step if it runs in one, and its skewlab version."""
    from skewlab import __version__

    job, step = os.environ.get("SLURM_JOB_ID"), os.environ.get("SLURM_STEP_ID")
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "slurm_step": f"{job}.{step}" if job and step else None,
        "version": __version__,
    }


@dataclass
class Message:
    node: str
    type: str
    body: dict[str, Any]


class ControlServer:
    """The launcher side: accepts node connections, queues their messages, sends commands."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.create_server((host, port), family=family)
        self.address: tuple[str, int] = self.sock.getsockname()[:2]
        self.messages: queue.Queue[Message] = queue.Queue()
        self._conns: dict[str, socket.socket] = {}
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, name="control-accept", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        node = "?"
        try:
            for line in conn.makefile("r", encoding="utf-8"):
                try:
                    body = json.loads(line)
                except json.JSONDecodeError:
                    continue
                node = str(body.get("node", node))
                if body.get("type") == "hello":
                    with self._lock:
                        self._conns[node] = conn
                self.messages.put(Message(node, str(body.get("type")), body))
        except OSError:
            pass
        self.messages.put(Message(node, "disconnected", {}))

    def send(self, node: str, type_: str, **fields: Any) -> bool:
        with self._lock:
            conn = self._conns.get(node)
        if conn is None:
            return False
        try:
            conn.sendall((json.dumps({"type": type_, **fields}) + "\n").encode())
            return True
        except OSError:
            return False

    def close(self) -> None:
        self._closed = True
        with self._lock:
            conns = list(self._conns.values())
        for c in conns:
            try:
                c.close()
            except OSError:
                pass
        self.sock.close()
