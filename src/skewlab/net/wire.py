"""Event wire format, version 2 (layout and rules in docs/PROTOCOL.md).

One UDP datagram per event, big-endian::

  0   4s  magic b"SKLB"
  4   B   version (2)
  5   B   kind: 1 event, 2 end of stream (event_id then carries the number of events sent)
  6   B   flags: bit 0 = an HMAC-SHA256 trailer follows; other bits reserved (0)
  7   B   n: number of source readings that follow
  8   I   source-set tag: CRC-32 of the comma-joined configured source names
  12  Q   event_id
  20  Q   sequence number
  28  q   send_local_ns: the coordinator's own clock at send
  36  H   payload length L
  38  n × (b status, q estimate_ns, q earliest_ns, q latest_ns)   the coordinator's send readings
  ..  L   padding bytes (zero)
  ..  32  HMAC-SHA256(key, every byte before it), when flag bit 0 is set

A reading without a value carries ``NO_VALUE`` (INT64_MIN) in its three value fields and
status 0 (UNSYNCHRONIZED). Anything that does not match is rejected with a ``WireError``
whose ``reason`` the receiver counts; decoding never raises anything else.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

MAGIC = b"SKLB"
VERSION = 2
KIND_EVENT = 1
KIND_END = 2
KINDS = (KIND_EVENT, KIND_END)
FLAG_HMAC = 0x01
NO_VALUE = -(1 << 63)  # "no value" on the wire; never a real time (it is year 1677)
MAC_LEN = 32
_SHA256_BLOCK = 64


class _HmacSha256:
    """HMAC-SHA256 under one key, with the key's inner and outer hash states computed once
    (RFC 2104): per message only two state copies and two short hashes — about half the cost
    of ``hmac.digest``, which sets the key up again for every message (OpenSSL 3)."""

    def __init__(self, key: bytes) -> None:
        k = hashlib.sha256(key).digest() if len(key) > _SHA256_BLOCK else key
        k = k.ljust(_SHA256_BLOCK, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in k)).copy
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in k)).copy

    def __call__(self, data: bytes | memoryview) -> bytes:
        i = self._inner()
        i.update(data)
        o = self._outer()
        o.update(i.digest())
        return o.digest()
_FIXED_FMT = "!4sBBBBIQQqH"
_FIXED = struct.Struct(_FIXED_FMT)
FIXED_LEN = _FIXED.size  # 38 bytes before the readings
READING_LEN = struct.calcsize("!bqqq")  # 25 bytes per source
MAX_U64 = (1 << 64) - 1

# Reasons a datagram is rejected (the receiver counts ``rejected_<reason>``).
REASONS = (
    "truncated",  # shorter than the fixed header
    "bad_magic",  # not a skewlab packet
    "bad_version",
    "bad_kind",
    "bad_flags",  # reserved flag bits set
    "bad_sources",  # another source set (count or tag differs from the receiver's)
    "bad_length",  # length does not match header + readings + L (+ MAC)
    "unauthenticated",  # the receiver requires an HMAC and the packet has none
    "unexpected_mac",  # the packet carries an HMAC the receiver has no key for
    "bad_mac",  # HMAC does not verify
)


class WireError(ValueError):
    """A datagram that is not a valid event packet for this receiver; ``reason`` is counted."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def source_tag(sources: Sequence[str]) -> int:
    """CRC-32 of the comma-joined source names: both ends must agree on the reading layout."""
    return zlib.crc32(",".join(sources).encode())


WireReading = tuple[int, int | None, int | None, int | None]  # status, estimate, earliest, latest


@dataclass(frozen=True, slots=True)
class EventPacket:
    """A decoded packet (the readable form; the worker's hot path uses ``decode_fields``)."""

    event_id: int
    seq: int
    local_send_ns: int
    kind: int = KIND_EVENT
    payload_len: int = 0
    readings: tuple[WireReading, ...] = ()
    authenticated: bool = False


class WireCodec:
    """Encoder/decoder for one experiment's source set and optional HMAC key.

    Both ends build it from the same spec; a packet from another source set, version or key is
    rejected, never misread.
    """

    def __init__(self, sources: Sequence[str], key: bytes | None = None) -> None:
        self.sources = tuple(sources)
        self.n = len(self.sources)
        if self.n > 255:
            raise ValueError("at most 255 sources fit the wire format")
        self.tag = source_tag(self.sources)
        self.key = key or None
        self.head = struct.Struct(_FIXED_FMT + "bqqq" * self.n)
        self.head_len = self.head.size
        self._enc: dict[int, struct.Struct] = {}  # payload length → struct with zero padding
        self._flags = FLAG_HMAC if self.key else 0
        self._mac = _HmacSha256(self.key) if self.key else None

    # -- encoding -----------------------------------------------------------------------------
    def _packer(self, payload_len: int) -> struct.Struct:
        s = self._enc.get(payload_len)
        if s is None:
            s = self._enc[payload_len] = struct.Struct(
                _FIXED_FMT + "bqqq" * self.n + f"{payload_len}x"
            )
        return s

    def encode_flat(
        self, kind: int, event_id: int, seq: int, local_send_ns: int, flat: Sequence[int],
        payload_len: int = 0,
    ) -> bytes:  # fmt: skip
        """Encode readings flattened to (status, est, lo, hi) × n, NO_VALUE for none."""
        data = self._packer(payload_len).pack(
            MAGIC, VERSION, kind, self._flags, self.n, self.tag,
            event_id, seq, local_send_ns, payload_len, *flat,
        )  # fmt: skip
        if self._mac is not None:
            data += self._mac(data)
        return data

    def encode(self, pkt: EventPacket) -> bytes:
        """Encode a packet; ``readings`` must have one entry per source (None → no value)."""
        if len(pkt.readings) != self.n:
            raise ValueError(f"{len(pkt.readings)} readings for {self.n} sources")
        flat: list[int] = []
        for st, e, lo, hi in pkt.readings:
            flat += (
                int(st),
                NO_VALUE if e is None else e,
                NO_VALUE if lo is None else lo,
                NO_VALUE if hi is None else hi,
            )
        return self.encode_flat(
            pkt.kind, pkt.event_id, pkt.seq, pkt.local_send_ns, flat, pkt.payload_len
        )

    # -- decoding -----------------------------------------------------------------------------
    def decode_fields(self, data: bytes) -> tuple:
        """Validate a datagram and return the raw unpacked tuple (the receive loop's fast path).

        Indices: 2 kind, 6 event_id, 7 seq, 8 send_local_ns, 9 payload length, 10.. readings
        as (status, estimate, earliest, latest) × n with NO_VALUE for "no value".
        Raises WireError(reason) for anything else.
        """
        size = len(data)
        if size < self.head_len:
            if size < FIXED_LEN:
                raise WireError("truncated")
            f = _FIXED.unpack_from(data)
            _check_fixed(f, self)
            raise WireError("bad_length")
        v = self.head.unpack_from(data)
        if v[0] != MAGIC or v[1] != VERSION or v[3] != self._flags or v[4] != self.n or (
            v[5] != self.tag
        ) or v[2] not in KINDS:  # fmt: skip
            _check_fixed(v, self)  # raises the specific reason for whichever field differs
        mac = MAC_LEN if v[3] & FLAG_HMAC else 0
        if size != self.head_len + v[9] + mac:
            raise WireError("bad_length")
        if mac and not hmac.compare_digest(
            self._mac(memoryview(data)[: size - MAC_LEN]),  # type: ignore[misc]
            data[size - MAC_LEN :],
        ):
            raise WireError("bad_mac")
        return v

    def decode(self, data: bytes) -> EventPacket:
        """Validate and decode into an :class:`EventPacket` (None where the wire has no value)."""
        v = self.decode_fields(data)
        rs = []
        for i in range(10, 10 + 4 * self.n, 4):
            st, e, lo, hi = v[i : i + 4]
            rs.append(
                (
                    st,
                    None if e == NO_VALUE else e,
                    None if lo == NO_VALUE else lo,
                    None if hi == NO_VALUE else hi,
                )
            )
        return EventPacket(v[6], v[7], v[8], v[2], v[9], tuple(rs), bool(v[3] & FLAG_HMAC))


def _check_fixed(v: tuple, codec: WireCodec) -> None:
    """Raise the most specific reason a fixed header does not fit ``codec``; return if it fits."""
    magic, version, kind, flags, n, tag = v[:6]
    if magic != MAGIC:
        raise WireError("bad_magic")
    if version != VERSION:
        raise WireError("bad_version")
    if kind not in KINDS:
        raise WireError("bad_kind")
    if flags & ~FLAG_HMAC:
        raise WireError("bad_flags")
    if n != codec.n or tag != codec.tag:
        raise WireError("bad_sources")
    if codec.key is not None and not flags & FLAG_HMAC:
        raise WireError("unauthenticated")
    if codec.key is None and flags & FLAG_HMAC:
        raise WireError("unexpected_mac")
