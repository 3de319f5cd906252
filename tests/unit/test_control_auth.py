"""The control channel's authentication (node/control.py) and the run's secrets
(node/secret.py): who cannot talk to a launcher, and what reaches its message queue."""

from __future__ import annotations

import io
import json
import queue
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from skewlab.node import control as control_mod
from skewlab.node.control import ControlAuthError, ControlLink, ControlServer, Message, _keys
from skewlab.node.secret import NodeKeys, RunSecrets, SecretError, read_keys

NODES = ("B", "C", "coordinator")


@pytest.fixture
def run_secrets() -> RunSecrets:
    return RunSecrets(True)


@pytest.fixture
def server(run_secrets: RunSecrets) -> Iterator[ControlServer]:
    s = ControlServer(
        "127.0.0.1", 0, key_for=lambda n: run_secrets.control_key(n) if n in NODES else None
    )
    yield s
    s.close()


def _drain(s: ControlServer, timeout: float = 0.3) -> list[Message]:
    out = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            out.append(s.messages.get(timeout=0.05))
        except queue.Empty:
            pass
    return out


def _wait_rejected(s: ControlServer, n: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while s.rejected_total() < n and time.monotonic() < deadline:
        time.sleep(0.01)


def _raw(s: ControlServer) -> tuple[socket.socket, io.BufferedReader, dict]:
    c = socket.create_connection(s.address, timeout=5)
    f = c.makefile("rb")
    return c, f, json.loads(f.readline())


def test_node_with_its_key_talks_both_ways(server: ControlServer, run_secrets) -> None:
    link = ControlLink(server.address, "B", run_secrets.control_key("B"))
    try:
        hello = server.messages.get(timeout=5)
        assert (hello.node, hello.type) == ("B", "hello") and hello.body["pid"]
        link.send("ready", port=1234)
        m = server.messages.get(timeout=5)
        assert (m.type, m.body["port"]) == ("ready", 1234)
        assert server.send("B", "start")
        assert link.start_event.wait(5)
        assert server.send("B", "stop")
        assert link.stop_event.wait(5) and not link.lost
    finally:
        link.close()
    assert server.messages.get(timeout=5).type == "disconnected"
    assert server.rejected_total() == 0



def _closed(f) -> bool:  # type: ignore[no-untyped-def]
    """The peer closed the connection: EOF, or a reset (the launcher closed it with our
    unread lines still in its socket, so the kernel answered with RST)."""
    try:
        return f.readline() == b""
    except ConnectionResetError:
        return True

def test_foreign_plain_json_client_is_closed_counted_and_unheard(server: ControlServer) -> None:
    # the pre-authentication protocol: plain JSON lines claiming to be node B
    c, f, challenge = _raw(server)
    assert challenge["type"] == "challenge"
    for msg in ({"type": "hello", "node": "B", "pid": 1}, {"type": "error", "node": "B",
                "message": "boom"}, {"type": "done", "node": "B", "counts": {}}):  # fmt: skip
        try:
            c.sendall(json.dumps(msg).encode() + b"\n")
        except OSError:
            break
    assert _closed(f)  # closed by the launcher
    c.close()
    _wait_rejected(server, 1)
    assert dict(server.rejected) == {"no_auth": 1}
    assert server.rejected_peers and server.rejected_peers[0].startswith("127.0.0.1:")
    assert _drain(server) == []  # nothing of it reached the launcher, not even "disconnected"
    assert server.send("B", "stop") is False  # and it is no node's connection


@pytest.mark.parametrize(
    ("auth", "reason"),
    [
        ({"type": "auth", "node": "B", "nonce": "ab" * 16, "mac": "00" * 32}, "bad_mac"),
        ({"type": "auth", "node": "Z", "nonce": "ab" * 16, "mac": "00" * 32}, "unknown_node"),
        ({"type": "auth", "node": "B", "nonce": "short", "mac": "00"}, "malformed"),
        ({"type": "hello", "node": "B"}, "no_auth"),
    ],
)
def test_bad_answers_to_the_challenge(server: ControlServer, auth: dict, reason: str) -> None:
    c, f, _ = _raw(server)
    c.sendall(json.dumps(auth).encode() + b"\n")
    assert _closed(f)
    c.close()
    _wait_rejected(server, 1)
    assert dict(server.rejected) == {reason: 1}
    assert _drain(server, 0.1) == []


def test_wrong_key_fails_on_both_sides(server: ControlServer) -> None:
    with pytest.raises(ControlAuthError):
        ControlLink(server.address, "B", RunSecrets(True).control_key("B"))  # another run's
    _wait_rejected(server, 1)
    assert dict(server.rejected) == {"bad_mac": 1}
    # a node's key does not open another node's name
    other = RunSecrets(True)
    with pytest.raises(ControlAuthError):
        ControlLink(server.address, "C", other.control_key("B"))


def test_silent_and_oversized_connections(server: ControlServer, monkeypatch) -> None:
    monkeypatch.setattr(control_mod, "AUTH_TIMEOUT_S", 0.2)
    c1, f1, _ = _raw(server)  # says nothing
    c2, f2, _ = _raw(server)
    c2.sendall(b"x" * (control_mod.MAX_AUTH_LINE + 10))  # no newline within the limit
    assert f1.readline() == b"" and f2.readline() == b""
    c1.close()
    c2.close()
    _wait_rejected(server, 2)
    assert dict(server.rejected) == {"timeout": 1, "no_auth": 1}


def test_too_many_pending_connections(server: ControlServer, monkeypatch, run_secrets) -> None:
    monkeypatch.setattr(control_mod, "MAX_PENDING", 2)
    held = [_raw(server) for _ in range(2)]
    extra = socket.create_connection(server.address, timeout=5)
    assert extra.recv(100) == b""  # closed at once, no challenge
    extra.close()
    _wait_rejected(server, 1)
    assert server.rejected["too_many_pending"] == 1
    # a real node meeting a full launcher retries until a slot frees up
    got: list[ControlLink] = []
    t = threading.Thread(target=lambda: got.append(
        ControlLink(server.address, "B", run_secrets.control_key("B"))))  # fmt: skip
    t.start()
    time.sleep(0.3)
    for c, f, _ in held:
        f.close()
        c.close()
    t.join(10)
    assert got and server.messages.get(timeout=5).type == "hello"
    got[0].close()
    assert server.rejected["too_many_pending"] >= 2


def _authenticated_raw(server: ControlServer, key: bytes, node: str):
    """A hand-made client that knows ``node``'s key (what a real node does)."""
    c, f, ch = _raw(server)
    nn = "cd" * 16
    mine, theirs, session = _keys(key, node, ch["nonce"], nn)
    c.sendall(json.dumps({"type": "auth", "node": node, "nonce": nn,
                          "mac": mine.hex()}).encode() + b"\n")  # fmt: skip
    assert json.loads(f.readline())["mac"] == theirs.hex()
    return c, f, control_mod._Session(session, "N", "L")


def test_lines_are_bound_to_their_connection_and_order(server, run_secrets) -> None:
    key = run_secrets.control_key("B")
    c, f, sess = _authenticated_raw(server, key, "B")
    first = sess.seal({"type": "hello", "node": "C", "pid": 7})  # claims to be C
    c.sendall(first)
    m = server.messages.get(timeout=5)
    assert (m.node, m.body["node"]) == ("B", "B")  # a node speaks only for itself
    c.sendall(first)  # replay of a line that was valid once: wrong sequence number
    assert _closed(f)
    c.close()
    rest = _drain(server)
    assert [m.type for m in rest] == ["disconnected"]
    assert dict(server.rejected) == {"after_auth_bad_mac": 1}
    # a second connection for a name already connected is refused
    c2, _f2, _sess2 = _authenticated_raw(server, run_secrets.control_key("C"), "C")
    c3, f3, ch = _raw(server)
    nn = "ef" * 16
    mine, _, _ = _keys(run_secrets.control_key("C"), "C", ch["nonce"], nn)
    c3.sendall(json.dumps({"type": "auth", "node": "C", "nonce": nn,
                           "mac": mine.hex()}).encode() + b"\n")  # fmt: skip
    assert f3.readline() == b""
    _wait_rejected(server, 2)
    assert server.rejected["duplicate_node"] == 1
    for s in (c2, c3):
        s.close()


def test_node_refuses_a_launcher_without_the_secret() -> None:
    # something else listens on the control address and answers the challenge wrongly
    lsock = socket.create_server(("127.0.0.1", 0))
    seen: list[bytes] = []

    def impostor() -> None:
        conn, _ = lsock.accept()
        f = conn.makefile("rb")
        conn.sendall(json.dumps({"type": "challenge", "protocol": control_mod.PROTOCOL,
                                 "nonce": "12" * 16}).encode() + b"\n")  # fmt: skip
        seen.append(f.readline())
        conn.sendall(json.dumps({"type": "welcome", "mac": "00" * 32}).encode() + b"\n")
        time.sleep(0.2)
        conn.close()

    t = threading.Thread(target=impostor)
    t.start()
    with pytest.raises(ControlAuthError, match="did not prove"):
        ControlLink(lsock.getsockname(), "B", RunSecrets(True).control_key("B"))
    t.join()
    lsock.close()
    assert json.loads(seen[0])["type"] == "auth"  # it learnt a MAC, never the key


def test_secrets_per_node_and_never_in_repr() -> None:
    a, b = RunSecrets(True), RunSecrets(True)
    assert a.control_key("B") != b.control_key("B")  # fresh per run
    assert a.control_key("B") != a.control_key("C")  # per node
    assert a.events and a.events != b.events and len(a.events) == 32
    assert RunSecrets(False).events is None
    assert RunSecrets("fixed").events == b"fixed"
    k = a.for_node("B")
    assert a.control_key("B").hex() not in repr(k) and a.events.hex() not in repr(k)
    assert "events=on" in repr(a)
    back = read_keys(io.BytesIO(k.to_line()))
    assert back == k
    for bad in (b"", b"{}\n", b"not json\n", b'{"control": "00"}\n',
                b'{"control": "' + b"ab" * 300 * 8 + b'"}\n'):  # fmt: skip
        with pytest.raises(SecretError):
            read_keys(io.BytesIO(bad))
    assert NodeKeys.from_line(NodeKeys(b"k" * 32, None).to_line()).events is None


def test_close_ends_the_accepting_thread(run_secrets: RunSecrets) -> None:
    """A closed server leaves no thread behind (one per run stayed blocked in accept before:
    a sweep of real cells gathered them, and the next run's node starter could not be forked
    from a process running threads)."""
    s = ControlServer(key_for=run_secrets.control_key)
    acceptor = s._acceptor
    assert acceptor.is_alive()
    s.close()
    assert not acceptor.is_alive()
