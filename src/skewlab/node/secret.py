"""A run's secrets: one fresh random root secret per run, the keys derived from it, and how a
node receives its keys (one line on its standard input, never a command line or a file).

The launcher makes the root secret (``RunSecrets``); each node gets only its own control key
(derived from the root and its name, so one node cannot speak for another) and the run's event
key (HMAC-SHA256 on every event datagram, docs/PROTOCOL.md). Nothing here is ever written to
disk, put in metadata or logged: ``repr`` of every holder hides the bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field
from typing import BinaryIO

SECRET_BYTES = 32  # the run's root secret: 256 random bits from the OS (secrets.token_bytes)
MAX_KEYS_LINE = 4096  # a node reads at most this much for its keys


class SecretError(RuntimeError):
    """A node's keys did not arrive (or arrived malformed); the message never holds a key."""


def derive(root: bytes, label: str) -> bytes:
    """A key for one purpose: HMAC-SHA256(root, label)."""
    return hmac.digest(root, label.encode(), hashlib.sha256)


@dataclass(frozen=True)
class NodeKeys:
    """What one node holds: its control key and the run's event key (None: events are not
    authenticated, ``run.hmac_key = false``)."""

    control: bytes = field(repr=False)
    events: bytes | None = field(repr=False)

    def to_line(self) -> bytes:
        """The keys as the one line a node reads on its standard input."""
        doc = {"control": self.control.hex(), "events": self.events.hex() if self.events else None}
        return json.dumps(doc).encode() + b"\n"

    @classmethod
    def from_line(cls, line: bytes) -> NodeKeys:
        try:
            doc = json.loads(line)
            control = bytes.fromhex(doc["control"])
            events = bytes.fromhex(doc["events"]) if doc.get("events") else None
        except (ValueError, KeyError, TypeError, AttributeError):
            raise SecretError("malformed keys on standard input") from None
        if len(control) < 16:
            raise SecretError("control key too short")
        return cls(control, events)


def read_keys(stream: BinaryIO) -> NodeKeys:
    """Read a node's keys: one line from ``stream`` (its standard input, inherited from the
    launcher's pipe, or the ssh/srun channel that carries it)."""
    line = stream.readline(MAX_KEYS_LINE)
    if not line.endswith(b"\n"):
        raise SecretError("no keys on standard input (the launcher sends them there)")
    return NodeKeys.from_line(line)


class RunSecrets:
    """The launcher's secrets for one run: a fresh random root secret and the event key.

    ``hmac_key``: the spec's ``run.hmac_key`` — True for a per-run key derived from the root,
    a string for that fixed key (UTF-8), False/None for unauthenticated events.
    """

    def __init__(self, hmac_key: bool | str | None = True) -> None:
        self._root = secrets.token_bytes(SECRET_BYTES)
        self._fixed = isinstance(hmac_key, str)
        if isinstance(hmac_key, str):
            self._events: bytes | None = hmac_key.encode()
        elif hmac_key:
            self._events = derive(self._root, "skewlab events v1")
        else:
            self._events = None

    def __repr__(self) -> str:
        return f"RunSecrets(events={'on' if self._events else 'off'})"

    @property
    def events(self) -> bytes | None:
        """The run's event key (None: unauthenticated events)."""
        return self._events

    def control_key(self, node: str) -> bytes:
        """Node ``node``'s control key: HMAC(root, "skewlab control v1 " + node)."""
        return derive(self._root, f"skewlab control v1 {node}")

    def for_node(self, node: str) -> NodeKeys:
        return NodeKeys(self.control_key(node), self._events)

    def material(self, nodes: list[str]) -> list[bytes]:
        """Every key of this run that a leak check looks for, raw and hex: the root, the
        derived event key and the control keys of ``nodes`` (a fixed key from the spec is the
        user's own text and is not included)."""
        keys = [self._root, *(self.control_key(n) for n in nodes)]
        if self._events and not self._fixed:
            keys.append(self._events)
        return [k for key in keys for k in (key, key.hex().encode())]
