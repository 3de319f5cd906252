"""Event wire format (version 1). Layout documented in docs/PROTOCOL.md.

  0  4s  magic b"SKLB"
  4  B   version (1)
  5  B   kind (1 = event, 2 = end of stream)
  6  H   flags (reserved, 0)
  8  Q   event_id
  16 Q   sequence
  24 q   local_send_ns (coordinator's own clock)
  32 H   payload length, followed by that many padding bytes
All integers big-endian. Anything else is rejected with a reason and counted by the receiver.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

MAGIC = b"SKLB"
VERSION = 1
KIND_EVENT = 1
KIND_END = 2
_HDR = struct.Struct("!4sBBHQQqH")
HEADER_LEN = _HDR.size


class WireError(ValueError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class EventPacket:
    event_id: int
    seq: int
    local_send_ns: int
    kind: int = KIND_EVENT
    payload_len: int = 0


def encode(pkt: EventPacket) -> bytes:
    return _HDR.pack(
        MAGIC, VERSION, pkt.kind, 0, pkt.event_id, pkt.seq, pkt.local_send_ns, pkt.payload_len
    ) + bytes(pkt.payload_len)


def decode(data: bytes) -> EventPacket:
    if len(data) < HEADER_LEN:
        raise WireError("truncated")
    magic, version, kind, _flags, event_id, seq, local_send, plen = _HDR.unpack_from(data)
    if magic != MAGIC:
        raise WireError("bad_magic")
    if version != VERSION:
        raise WireError("bad_version")
    if kind not in (KIND_EVENT, KIND_END):
        raise WireError("bad_kind")
    if len(data) != HEADER_LEN + plen:
        raise WireError("bad_length")
    return EventPacket(event_id, seq, local_send, kind, plen)
