"""Event wire format v2: round trip, exact layout, and rejection of every kind of bad input."""

from __future__ import annotations

import hashlib
import hmac
import random
import struct

import pytest

from skewlab.net import wire
from skewlab.net.wire import NO_VALUE, EventPacket, WireCodec, WireError

SOURCES = ["system", "ntp", "truetime"]
READINGS = (
    (1, 1_700_000_000_000_000_123, 1_700_000_000_000_000_123, 1_700_000_000_000_000_123),
    (2, 1_700_000_000_000_000_500, 1_700_000_000_000_000_400, 1_700_000_000_000_000_600),
    (0, None, None, None),
)


def _pkt(**kw) -> EventPacket:
    base = dict(event_id=42, seq=41, local_send_ns=-5, kind=wire.KIND_EVENT, payload_len=17)
    base.update(kw)
    return EventPacket(readings=READINGS, **base)


@pytest.mark.parametrize("key", [None, b"shared secret"])
def test_round_trip(key: bytes | None) -> None:
    c = WireCodec(SOURCES, key)
    p = _pkt()
    data = c.encode(p)
    mac = 32 if key else 0
    assert len(data) == 38 + 25 * len(SOURCES) + 17 + mac
    out = c.decode(data)
    assert out == EventPacket(42, 41, -5, wire.KIND_EVENT, 17, READINGS, key is not None)


def test_layout_is_the_documented_one() -> None:
    c = WireCodec(SOURCES)
    data = c.encode(_pkt(payload_len=3))
    assert data[:4] == b"SKLB" and data[4] == 2 and data[5] == wire.KIND_EVENT and data[6] == 0
    assert data[7] == len(SOURCES)
    (tag,) = struct.unpack_from("!I", data, 8)
    import zlib

    assert tag == zlib.crc32(b"system,ntp,truetime")
    eid, seq, local, plen = struct.unpack_from("!QQqH", data, 12)
    assert (eid, seq, local, plen) == (42, 41, -5, 3)
    # third source: no value → status 0 and INT64_MIN in each value field
    st, e, lo, hi = struct.unpack_from("!bqqq", data, 38 + 2 * 25)
    assert st == 0 and e == lo == hi == -(2**63) == NO_VALUE
    assert data[-3:] == b"\0\0\0"


def test_end_marker_and_extremes() -> None:
    c = WireCodec(["system"])
    top = 2**64 - 1
    p = EventPacket(top, top, -(2**63) + 1, wire.KIND_END, 0, ((1, 7, 7, 7),))
    assert c.decode(c.encode(p)) == p


def test_hmac_tag_is_hmac_sha256_of_the_body() -> None:
    key = b"k" * 32
    c = WireCodec(SOURCES, key)
    data = c.encode(_pkt())
    assert data[6] & wire.FLAG_HMAC
    assert data[-32:] == hmac.new(key, data[:-32], hashlib.sha256).digest()


def _reason(c: WireCodec, data: bytes) -> str:
    with pytest.raises(WireError) as ei:
        c.decode_fields(data)
    assert ei.value.reason in wire.REASONS
    return ei.value.reason


def test_rejections_by_reason() -> None:
    c = WireCodec(SOURCES)
    good = bytearray(c.encode(_pkt()))
    assert _reason(c, b"") == "truncated"
    assert _reason(c, bytes(good[:20])) == "truncated"
    assert _reason(c, bytes(good[:50])) == "bad_length"
    assert _reason(c, bytes(good[:-1])) == "bad_length"
    assert _reason(c, bytes(good) + b"\0") == "bad_length"
    assert _reason(c, b"XXXX" + bytes(good[4:])) == "bad_magic"
    for i, v, why in [(4, 1, "bad_version"), (5, 9, "bad_kind"), (6, 0x80, "bad_flags"),
                      (7, 2, "bad_sources")]:  # fmt: skip
        bad = bytearray(good)
        bad[i] = v
        assert _reason(c, bytes(bad)) == why
    other = WireCodec(["system", "ntp", "clockbound"])  # same count, other tag
    assert _reason(c, other.encode(_pkt())) == "bad_sources"
    # a v1 packet of the walking skeleton is foreign to v2
    v1 = struct.pack("!4sBBHQQqH", b"SKLB", 1, 1, 0, 1, 1, 5, 0)
    assert _reason(c, v1) == "truncated" or _reason(c, v1 + bytes(200)) == "bad_version"


def test_hmac_rejections() -> None:
    key = b"shared"
    signed = WireCodec(SOURCES, key)
    plain = WireCodec(SOURCES)
    data = signed.encode(_pkt())
    assert _reason(plain, data) == "unexpected_mac"
    assert _reason(signed, plain.encode(_pkt())) == "unauthenticated"
    assert _reason(WireCodec(SOURCES, b"other"), data) == "bad_mac"
    flipped = bytearray(data)
    flipped[20] ^= 1  # the event id changes: the MAC no longer matches
    assert _reason(signed, bytes(flipped)) == "bad_mac"
    flipped = bytearray(data)
    flipped[-1] ^= 1
    assert _reason(signed, bytes(flipped)) == "bad_mac"


def test_random_garbage_never_crashes() -> None:
    """Fuzz: only WireError comes out, whatever the bytes (seeded, so it reproduces)."""
    rng = random.Random(6)
    c = WireCodec(SOURCES, b"key")
    good = c.encode(_pkt())
    counts: dict[str, int] = {}
    for i in range(3000):
        if i % 2:
            data = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 200)))
        else:  # mutate a valid packet in a few places
            b = bytearray(good)
            for _ in range(rng.randrange(1, 4)):
                b[rng.randrange(len(b))] = rng.getrandbits(8)
            data = bytes(b)
        try:
            c.decode_fields(data)
            counts["accepted"] = counts.get("accepted", 0) + 1
        except WireError as e:
            counts[e.reason] = counts.get(e.reason, 0) + 1
    # a mutated packet can only pass if the mutation left it unchanged (same random byte)
    assert counts.get("accepted", 0) < 50
    assert counts.get("bad_mac", 0) > 0 and counts.get("bad_magic", 0) > 0


def test_encode_checks_reading_count() -> None:
    with pytest.raises(ValueError):
        WireCodec(SOURCES).encode(EventPacket(1, 1, 1, readings=READINGS[:1]))
