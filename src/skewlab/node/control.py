"""Control channel between the launcher and its nodes: authenticated JSON lines over TCP.

Node → launcher: hello, warmup (progress), ready, progress, done, error.
Launcher → node: start, stop. A node whose control connection drops stops by itself, so no
node outlives its launcher.

Every connection starts with a challenge-response on the node's control key (docs/PROTOCOL.md):
the launcher sends a fresh nonce, the node answers with its name, its own nonce and an
HMAC-SHA256 over both; the launcher answers with its own HMAC (so the node knows it talks to
its launcher). Every later line in either direction is ``MAC JSON``, the MAC an HMAC-SHA256
under a session key derived from both nonces, over the direction, the line's sequence number
and the JSON text: a line cannot be forged, replayed, reordered or moved to another connection.
A connection that cannot authenticate is closed and counted (``ControlServer.rejected``);
nothing it sent reaches the launcher's message queue.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import queue
import secrets
import socket
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

from skewlab.timebase import monotonic_s, sleep

PROTOCOL = "skewlab-control-1"
NONCE_BYTES = 16
AUTH_TIMEOUT_S = 5.0  # a connection must authenticate within this long (launcher side)
CONNECT_TIMEOUT_S = 10.0  # a node's connect + handshake
MAX_AUTH_LINE = 1024  # bytes a connection may send before it authenticated
MAX_LINE = 1 << 20  # one authenticated message
MAX_PENDING = 64  # connections authenticating at once; more are closed at once (and counted);
# a node closed before its challenge retries until CONNECT_TIMEOUT_S
MAX_PEERS_KEPT = 20  # rejected peers' addresses remembered for metadata


class ControlAuthError(RuntimeError):
    """The control channel could not be authenticated (the message never holds a key)."""


class _Busy(ControlAuthError):
    """The launcher closed the connection before its challenge (too many pending): retry."""


def _mac(key: bytes, *parts: str) -> bytes:
    return hmac.digest(key, json.dumps([PROTOCOL, *parts]).encode(), hashlib.sha256)


def _is_nonce(v: object) -> bool:
    if not isinstance(v, str) or len(v) != 2 * NONCE_BYTES:
        return False
    try:
        bytes.fromhex(v)
    except ValueError:
        return False
    return True


class _Session:
    """One authenticated connection's framing: each line is ``MAC JSON``, with
    MAC = hex HMAC-SHA256(session key, "<direction> <seq> <JSON>"), seq counting lines per
    direction from 0."""

    def __init__(self, key: bytes, out_dir: str, in_dir: str) -> None:
        self._key = key
        self._out, self._in = out_dir, in_dir
        self._sent = 0
        self._received = 0

    def seal(self, obj: dict[str, Any]) -> bytes:
        text = json.dumps(obj, default=str).encode()
        head = f"{self._out} {self._sent} ".encode()
        self._sent += 1
        mac = hmac.digest(self._key, head + text, hashlib.sha256).hex().encode()
        return mac + b" " + text + b"\n"

    def open(self, line: bytes) -> dict[str, Any]:
        """The message of one line, or ControlAuthError if its MAC does not verify."""
        mac_hex, _, text = line.rstrip(b"\n").partition(b" ")
        head = f"{self._in} {self._received} ".encode()
        want = hmac.digest(self._key, head + text, hashlib.sha256).hex().encode()
        if not hmac.compare_digest(want, mac_hex):
            raise ControlAuthError("bad_mac")
        self._received += 1
        try:
            obj = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError):
            obj = None
        if not isinstance(obj, dict):
            raise ControlAuthError("malformed")
        return obj


def _keys(key: bytes, node: str, ns: str, nn: str) -> tuple[bytes, bytes, bytes]:
    """(node's answer, launcher's answer, session key) for one handshake."""
    return (_mac(key, "auth", node, ns, nn), _mac(key, "welcome", node, ns, nn),
            _mac(key, "session", node, ns, nn))  # fmt: skip


def _readline(f: BinaryIO, limit: int) -> bytes | None:
    """One whole line of at most ``limit`` bytes, or None (end of stream, or too long)."""
    line = f.readline(limit)
    return line if line.endswith(b"\n") else None


class ControlLink:
    """The node side of the control channel."""

    def __init__(self, address: tuple[str, int], node: str, key: bytes) -> None:
        self.node = node
        self._connect(address, key)
        self.sock.settimeout(None)
        self._wlock = threading.Lock()
        self.start_event = threading.Event()
        self.stop_event = threading.Event()
        self.lost = False
        self._thread = threading.Thread(target=self._reader, name="control", daemon=True)
        self._thread.start()
        self.send("hello", **hello_fields())

    def _connect(self, address: tuple[str, int], key: bytes) -> None:
        """Connect and authenticate; a connection closed before its challenge (the launcher
        has too many pending) is retried with backoff until CONNECT_TIMEOUT_S."""
        deadline = monotonic_s() + CONNECT_TIMEOUT_S
        pause = 0.05
        while True:
            self.sock = socket.create_connection(address, timeout=CONNECT_TIMEOUT_S)
            self._rfile = self.sock.makefile("rb")
            try:
                self._session = self._handshake(key)
                return
            except _Busy:
                self.sock.close()
                if monotonic_s() + pause > deadline:
                    why = "the launcher closed every connection before its challenge"
                    raise ControlAuthError(why) from None
                sleep(pause)
                pause = min(1.0, pause * 2)
            except (OSError, ControlAuthError):
                self.sock.close()
                raise

    def _handshake(self, key: bytes) -> _Session:
        first = self._rfile.readline(MAX_AUTH_LINE)
        if not first:
            raise _Busy("closed before the challenge")
        line = first if first.endswith(b"\n") else None
        try:
            ch = json.loads(line) if line else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            ch = None
        if not isinstance(ch, dict) or ch.get("type") != "challenge" or (
            ch.get("protocol") != PROTOCOL or not _is_nonce(ch.get("nonce"))
        ):  # fmt: skip
            raise ControlAuthError("the control address did not send a skewlab challenge")
        ns, nn = ch["nonce"], secrets.token_hex(NONCE_BYTES)
        mine, theirs, session = _keys(key, self.node, ns, nn)
        msg = {"type": "auth", "node": self.node, "nonce": nn, "mac": mine.hex()}
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        line = _readline(self._rfile, MAX_AUTH_LINE)
        try:
            w = json.loads(line) if line else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            w = None
        if not isinstance(w, dict) or w.get("type") != "welcome" or not hmac.compare_digest(
            str(w.get("mac", "")).encode(), theirs.hex().encode()
        ):  # fmt: skip
            raise ControlAuthError("the launcher did not prove the run's secret (refused)")
        return _Session(session, "N", "L")

    def send(self, type_: str, **fields: Any) -> None:
        with self._wlock:
            try:
                self.sock.sendall(self._session.seal({"type": type_, "node": self.node, **fields}))
            except OSError:
                self.lost = True
                self.stop_event.set()

    def _reader(self) -> None:
        try:
            while (line := _readline(self._rfile, MAX_LINE)) is not None:
                try:
                    msg = self._session.open(line)
                except ControlAuthError:
                    break  # not from our launcher: the channel is no longer trusted
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


@dataclass
class _Peer:
    conn: socket.socket
    session: _Session
    lock: threading.Lock


KeyFor = Callable[[str], "bytes | None"]


class ControlServer:
    """The launcher side: authenticates node connections, queues their messages, sends
    commands. ``key_for(node)`` is node's control key, or None for a name not of this run."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, key_for: KeyFor) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.create_server((host, port), family=family)
        self.address: tuple[str, int] = self.sock.getsockname()[:2]
        self.messages: queue.Queue[Message] = queue.Queue()
        self.rejected: Counter[str] = Counter()  # connections closed unauthenticated, by reason
        self.rejected_peers: list[str] = []  # their addresses (the first MAX_PEERS_KEPT)
        self._key_for = key_for
        self._peers: dict[str, _Peer] = {}
        self._open: set[socket.socket] = set()
        self._pending = 0
        self._lock = threading.Lock()
        self._closed = False
        self._acceptor = threading.Thread(target=self._accept, name="control-accept", daemon=True)
        self._acceptor.start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, peer = self.sock.accept()
            except OSError:
                return
            with self._lock:
                busy = self._pending >= MAX_PENDING
                if not busy:
                    self._pending += 1
                    self._open.add(conn)
            if busy:
                self._reject(conn, peer, "too_many_pending")
                continue
            threading.Thread(target=self._serve, args=(conn, peer), daemon=True).start()

    def _reject(self, conn: socket.socket, peer: Any, reason: str) -> None:
        with self._lock:
            self.rejected[reason] += 1
            if len(self.rejected_peers) < MAX_PEERS_KEPT:
                self.rejected_peers.append(f"{peer[0]}:{peer[1]}" if peer else "?")
            self._open.discard(conn)
        try:
            conn.close()
        except OSError:
            pass

    def _authenticate(self, conn: socket.socket, f: BinaryIO) -> tuple[str, _Peer] | str:
        """(node, its peer) once the connection proved its node's key; else why not."""
        ns = secrets.token_hex(NONCE_BYTES)
        ch = {"type": "challenge", "protocol": PROTOCOL, "nonce": ns}
        conn.sendall(json.dumps(ch).encode() + b"\n")
        line = _readline(f, MAX_AUTH_LINE)
        if line is None:
            return "no_auth"
        try:
            a = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return "malformed"
        if not isinstance(a, dict) or a.get("type") != "auth":
            return "no_auth"
        node, nn, mac = a.get("node"), a.get("nonce"), a.get("mac")
        if not isinstance(node, str) or not isinstance(mac, str) or not _is_nonce(nn):
            return "malformed"
        key = self._key_for(node)
        if key is None:
            return "unknown_node"
        want, welcome, session = _keys(key, node, ns, str(nn))
        if not hmac.compare_digest(want.hex().encode(), mac.encode()):
            return "bad_mac"
        peer = _Peer(conn, _Session(session, "L", "N"), threading.Lock())
        with peer.lock:  # nothing is sent to the node before its welcome
            with self._lock:
                if node in self._peers:
                    return "duplicate_node"
                self._peers[node] = peer
            conn.sendall(json.dumps({"type": "welcome", "mac": welcome.hex()}).encode() + b"\n")
        return node, peer

    def _serve(self, conn: socket.socket, addr: Any) -> None:
        try:
            conn.settimeout(AUTH_TIMEOUT_S)
            f = conn.makefile("rb")
            got = self._authenticate(conn, f)
        except (OSError, ValueError) as e:
            got = "timeout" if isinstance(e, TimeoutError) else "no_auth"
        finally:
            with self._lock:
                self._pending -= 1
        if isinstance(got, str):
            self._reject(conn, addr, got)
            return
        node, peer = got
        try:
            conn.settimeout(None)
            while (line := _readline(f, MAX_LINE)) is not None:
                try:
                    body = peer.session.open(line)
                except ControlAuthError as e:  # an authenticated connection, tampered with
                    with self._lock:
                        self.rejected[f"after_auth_{e}"] += 1
                    break
                body["node"] = node  # a node speaks only for itself
                self.messages.put(Message(node, str(body.get("type")), body))
        except (OSError, ValueError):
            pass
        try:
            conn.close()
        except OSError:
            pass
        self.messages.put(Message(node, "disconnected", {}))

    def send(self, node: str, type_: str, **fields: Any) -> bool:
        with self._lock:
            peer = self._peers.get(node)
        if peer is None:
            return False
        try:
            with peer.lock:
                peer.conn.sendall(peer.session.seal({"type": type_, **fields}))
            return True
        except OSError:
            return False

    def rejected_total(self) -> int:
        with self._lock:
            return sum(self.rejected.values())

    def close(self) -> None:
        """Close every connection and the listening socket, and end the accepting thread (a
        close alone does not wake a thread blocked in accept on Linux: one thread per run stayed
        blocked for the life of the process, e.g. a sweep of real cells)."""
        self._closed = True
        with self._lock:
            conns = [p.conn for p in self._peers.values()] + list(self._open)
        for c in conns:
            try:
                c.close()
            except OSError:
                pass
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept (EINVAL)
        except OSError:
            pass
        self.sock.close()
        if self._acceptor is not threading.current_thread():
            self._acceptor.join(timeout=5)
